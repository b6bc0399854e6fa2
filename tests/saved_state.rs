//! A pipeline's saved state: a run whose state cannot be read fails naming
//! the pipeline and `flowline state reset`, never silently starts over;
//! `flowline state show` and `reset` work on both warehouses.

mod common;

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde_json::{Value, json};

use common::{PgDatabase, TestProject, orders_csv};

const ORDERS: &str = "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n\n\
                      [destination]\ntable = \"raw.orders\"\n";

/// A project that loaded `data/a.csv` (5 rows) once.
fn loaded(p: &TestProject) {
    p.write("pipelines/orders.toml", ORDERS);
    p.write("data/a.csv", orders_csv(1, 5));
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 5);
}

/// Asserts that `flowline run` fails on the unreadable state, naming the
/// pipeline and the way out, and loads nothing.
fn run_fails_on_unreadable_state(p: &TestProject, rows_before: i64) {
    let out = p.fails(&["run"]);
    assert!(
        out.contains("FAILED  orders: saved state of orders is unreadable")
            && out.contains("run `flowline state reset orders`"),
        "{out}"
    );
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        rows_before,
        "nothing is loaded again"
    );
}

#[test]
fn a_state_of_the_wrong_shape_fails_the_run_until_it_is_reset() {
    let p = TestProject::new();
    loaded(&p);
    p.ok(&[
        "sql",
        "update _flowline_state set state = '{\"files\": 42}'",
    ]);
    run_fails_on_unreadable_state(&p, 5);
    // Still failing: the run did not overwrite the state.
    run_fails_on_unreadable_state(&p, 5);

    let out = p.ok(&["state", "reset", "orders"]);
    assert!(
        out.starts_with("reset   orders: saved state forgotten"),
        "{out}"
    );
    assert!(
        p.ok(&["state", "show", "orders"])
            .contains("no saved state")
    );
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        10,
        "the file is loaded again from the beginning (append)"
    );
    let shown = p.ok(&["state", "show", "orders"]);
    assert!(shown.contains("\"data/a.csv\""), "{shown}");
    let again = p.ok(&["state", "reset", "orders", "--json"]);
    let again: Value = serde_json::from_str(&again).expect("json");
    assert_eq!(again, json!({"pipeline": "orders", "reset": true}));
}

#[test]
fn a_state_that_is_not_json_fails_the_run_and_status_says_so() {
    let p = TestProject::new();
    loaded(&p);
    p.ok(&["sql", "update _flowline_state set state = '{\"files\": {'"]);
    run_fails_on_unreadable_state(&p, 5);
    let status = p.ok(&["status"]);
    assert!(
        status.contains("saved state of orders is unreadable"),
        "{status}"
    );
    let shown = p.fails(&["state", "show", "orders"]);
    assert!(shown.contains("flowline state reset orders"), "{shown}");
    p.ok(&["state", "reset", "orders"]);
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 10);
}

#[test]
fn an_unknown_pipeline_is_not_reset() {
    let p = TestProject::new();
    loaded(&p);
    let out = p.fails(&["state", "reset", "ordres"]);
    assert!(out.contains("ordres"), "{out}");
    let out = p.ok(&["state", "reset", "orders"]);
    assert!(out.starts_with("reset   orders"), "{out}");
    let out = p.ok(&["state", "reset", "orders"]);
    assert!(out.starts_with("orders: no saved state to reset"), "{out}");
}

#[test]
fn an_http_cursor_that_cannot_be_read_fails_the_run() {
    let base = common::serve_http(Router::new().route(
        "/items",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            let since: i64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            let items: Vec<Value> = (since + 1..=3)
                .map(|id| json!({"id": id, "updated_at": id}))
                .collect();
            axum::Json(items)
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        format!(
            "[source]\nkind = \"http\"\nurl = \"{base}/items\"\n\
             incremental = {{ cursor = \"updated_at\", param = \"since\" }}\n\n\
             [destination]\ntable = \"raw.orders\"\n"
        ),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 3);
    p.ok(&["sql", "update _flowline_state set state = '[1, 2]'"]);
    run_fails_on_unreadable_state(&p, 3);
    p.ok(&["state", "reset", "orders"]);
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 6);
}

#[test]
fn a_postgres_warehouse_state_is_reset_too() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"pgw\"\n\n[warehouse]\nkind = \"postgres\"\nconnection = \"wh\"\n\n\
             [connections.wh]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    loaded(&p);
    db.execute("update public._flowline_state set state = '{\"files\": 42}'");
    run_fails_on_unreadable_state(&p, 5);
    assert!(
        p.ok(&["state", "reset", "orders"])
            .starts_with("reset   orders")
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 10);
}
