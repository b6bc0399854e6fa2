//! kill -9 at several points of a load, then a re-run: no row lost, none
//! duplicated, for append, merge and replace.

mod common;

use std::time::Duration;

use common::{TestProject, orders_csv, run_and_kill};

const FILES: i64 = 24;
const ROWS_PER_FILE: i64 = 25_000;

fn project(write: &str) -> TestProject {
    let p = TestProject::new();
    let keys = if write == "merge" {
        "primary_key = [\"id\"]\n"
    } else {
        ""
    };
    p.write(
        "pipelines/orders.toml",
        format!(
            "[source]\nkind = \"file\"\npath = \"data/*.csv\"\nbatch_size = 5000\n\n\
             [[transform]]\nsql = \"select id, customer, amount_cents, status from input\"\n\n\
             [destination]\ntable = \"raw.orders\"\nwrite = \"{write}\"\n{keys}"
        ),
    );
    for f in 0..FILES {
        p.write(
            &format!("data/part-{f:03}.csv"),
            orders_csv(f * ROWS_PER_FILE + 1, ROWS_PER_FILE),
        );
    }
    p
}

fn assert_complete(p: &TestProject) {
    let total = FILES * ROWS_PER_FILE;
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        total,
        "row count"
    );
    assert_eq!(
        p.scalar("select count(distinct id) from raw.orders"),
        total,
        "no duplicates"
    );
    assert_eq!(
        p.scalar("select sum(id) from raw.orders"),
        total * (total + 1) / 2,
        "checksum"
    );
    assert_eq!(
        p.scalar("select sum(amount_cents) from raw.orders"),
        (1..=total).map(|id| id * 3 % 10_000).sum::<i64>(),
        "checksum of values"
    );
}

fn kill_at_several_points_then_rerun(write: &str) {
    let p = project(write);
    let mut killed = 0;
    for delay_ms in [40, 120, 250, 400, 700, 1000, 1500] {
        if run_and_kill(&p, Duration::from_millis(delay_ms)) {
            killed += 1;
        }
        if write == "append" || write == "merge" {
            // Whatever is committed so far is whole files, never part of one.
            let rows = p.query(
                "select count(*) as n from information_schema.tables where table_name = 'orders'",
            );
            if rows[0]["n"] == 1 {
                let n = p.scalar("select count(*) from raw.orders");
                assert_eq!(
                    n % ROWS_PER_FILE,
                    0,
                    "partial file committed after kill at {delay_ms}ms"
                );
            }
        }
    }
    assert!(
        killed > 0,
        "no run was killed mid-load; the data set is too small for this machine"
    );
    p.ok(&["run"]);
    assert_complete(&p);
    p.ok(&["run"]);
    assert_complete(&p);
}

#[test]
fn append_survives_kill_9() {
    kill_at_several_points_then_rerun("append");
}

#[test]
fn merge_survives_kill_9() {
    kill_at_several_points_then_rerun("merge");
}

#[test]
fn replace_survives_kill_9() {
    kill_at_several_points_then_rerun("replace");
}

/// A Postgres table read into DuckDB, killed at several points: the load is
/// one transaction with its cursor, so a re-run completes it exactly.
fn postgres_kill_9_then_rerun(write: &str) {
    let Some(db) = common::PgDatabase::create() else {
        return;
    };
    let rows: i64 = 400_000;
    db.execute(&format!(
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text, amount numeric(12,2));
         INSERT INTO events SELECT g, md5(g::text), g / 100.0 FROM generate_series(1, {rows}) g;"
    ));
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"k\"\n[connections.pg]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    let keys = if write == "merge" {
        "primary_key = [\"id\"]\n"
    } else {
        ""
    };
    p.write(
        "pipelines/orders.toml",
        format!(
            "[source]\nkind = \"postgres\"\nconnection = \"pg\"\ntable = \"events\"\nbatch_size = 10000\n\
             incremental = {{ cursor = \"id\" }}\n\n[destination]\ntable = \"raw.orders\"\nwrite = \"{write}\"\n{keys}"
        ),
    );
    let mut killed = 0;
    for delay_ms in [60, 200, 450, 800, 1200] {
        if run_and_kill(&p, Duration::from_millis(delay_ms)) {
            killed += 1;
        }
    }
    assert!(killed > 0, "no run was killed mid-load");
    for _ in 0..2 {
        p.ok(&["run"]);
        assert_eq!(p.scalar("select count(*) from raw.orders"), rows);
        assert_eq!(p.scalar("select count(distinct id) from raw.orders"), rows);
        assert_eq!(
            p.scalar("select sum(id) from raw.orders"),
            rows * (rows + 1) / 2
        );
    }
}

#[test]
fn postgres_append_survives_kill_9() {
    postgres_kill_9_then_rerun("append");
}

#[test]
fn postgres_merge_survives_kill_9() {
    postgres_kill_9_then_rerun("merge");
}

#[test]
fn postgres_replace_survives_kill_9() {
    postgres_kill_9_then_rerun("replace");
}
