//! SQL models end to end, through the built binary: every materialization
//! and incremental strategy on DuckDB and on Postgres, `is_incremental()`
//! on first and later runs, schema changes, selection, cycles, Jinja and
//! SQL errors, the atomic swap, threads, a dbt project folder, and a job's
//! models step.

mod common;

use std::time::Duration;

use common::{PgDatabase, TestProject};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A project on the embedded DuckDB warehouse.
fn duckdb_project() -> TestProject {
    TestProject::new()
}

/// A project whose warehouse is the Postgres database `db`.
fn postgres_project(db: &PgDatabase) -> TestProject {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"pgmodels\"\n\n[warehouse]\nkind = \"postgres\"\nconnection = \"wh\"\n\n[connections.wh]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    p
}

/// `raw.orders` holding `rows` as (id, status, amount).
fn load_orders(p: &TestProject, rows: &[(i64, &str, i64)]) {
    // Kept and refilled: views built on it stay.
    p.ok(&["sql", "CREATE SCHEMA IF NOT EXISTS raw"]);
    p.ok(&[
        "sql",
        "CREATE TABLE IF NOT EXISTS raw.orders (id INTEGER, status VARCHAR, amount INTEGER)",
    ]);
    p.ok(&["sql", "DELETE FROM raw.orders"]);
    let values: Vec<String> = rows
        .iter()
        .map(|(id, status, amount)| format!("({id}, '{status}', {amount})"))
        .collect();
    p.ok(&[
        "sql",
        &format!("INSERT INTO raw.orders VALUES {}", values.join(", ")),
    ]);
}

/// The models of [`every_materialization`]: a view over the source, an
/// ephemeral model inlined into a table, and one incremental model per
/// strategy, each recording whether `is_incremental()` was true when it
/// wrote a row.
fn write_models(p: &TestProject) {
    p.write(
        "models/sources.yml",
        "version: 2\nsources:\n  - name: shop\n    schema: raw\n    tables:\n      - name: orders\n",
    );
    p.write(
        "models/staging/stg_orders.sql",
        "select id, status, amount from {{ source('shop', 'orders') }}\n",
    );
    p.write(
        "models/staging/paid_orders.sql",
        "{{ config(materialized='ephemeral') }}\nselect * from {{ ref('stg_orders') }} where status = 'paid'\n",
    );
    p.write(
        "models/marts/revenue.sql",
        "{{ config(materialized='table', schema='marts') }}\nwith totals as (select sum(amount) as total from {{ ref('paid_orders') }})\nselect total, (select count(*) from {{ ref('stg_orders') }}) as orders from totals\n",
    );
    for (name, strategy) in [
        ("orders_append", "append"),
        ("orders_merge", "merge"),
        ("orders_delete_insert", "delete+insert"),
    ] {
        let key = if strategy == "append" {
            String::new()
        } else {
            ", unique_key='id'".to_string()
        };
        p.write(
            &format!("models/marts/{name}.sql"),
            format!(
                "{{{{ config(materialized='incremental', incremental_strategy='{strategy}'{key}) }}}}\n\
                 select id, status, amount, {{% if is_incremental() %}}true{{% else %}}false{{% endif %}} as incremental_run\n\
                 from {{{{ ref('stg_orders') }}}}\n\
                 {{% if is_incremental() %}}where id >= (select max(id) from {{{{ this }}}}){{% endif %}}\n"
            ),
        );
    }
}

fn count(p: &TestProject, sql: &str) -> i64 {
    p.scalar(sql)
}

/// Every materialization and incremental strategy, with `is_incremental()`
/// false on the first run and under `--full-refresh`, true in between.
fn every_materialization(p: &TestProject, schema: &str) {
    load_orders(p, &[(1, "paid", 10), (2, "paid", 20), (3, "open", 30)]);
    write_models(p);
    let out = p.ok(&["models", "run"]);
    assert!(
        out.contains("done: 5 succeeded, 0 failed, 0 skipped"),
        "{out}"
    );
    // The view follows the source; the ephemeral model ran inside revenue.
    assert_eq!(
        count(p, &format!("select count(*) from {schema}.stg_orders")),
        3
    );
    assert_eq!(count(p, "select total from marts.revenue"), 30);
    assert_eq!(
        count(
            p,
            "select count(*) from information_schema.tables where table_name = 'paid_orders'"
        ),
        0,
        "an ephemeral model is not built"
    );
    let compiled =
        std::fs::read_to_string(p.path().join(".flowline/compiled/models/marts/revenue.sql"))
            .expect("compiled SQL is written");
    assert!(
        compiled.starts_with("with __flowline_cte__paid_orders as ("),
        "{compiled}"
    );
    for model in ["orders_append", "orders_merge", "orders_delete_insert"] {
        assert_eq!(
            count(
                p,
                &format!("select count(*) from {schema}.{model} where not incremental_run")
            ),
            3,
            "{model}: the first run is not incremental"
        );
    }

    // Order 3 changes, 4 and 5 arrive.
    load_orders(
        p,
        &[
            (1, "paid", 10),
            (2, "paid", 20),
            (3, "paid", 35),
            (4, "open", 40),
            (5, "paid", 50),
        ],
    );
    p.ok(&["models", "run"]);
    assert_eq!(count(p, "select total from marts.revenue"), 115);
    // append: the rows from id 3 on are added again (3 comes twice).
    assert_eq!(
        count(p, &format!("select count(*) from {schema}.orders_append")),
        6
    );
    assert_eq!(
        count(
            p,
            &format!("select count(*) from {schema}.orders_append where incremental_run")
        ),
        3
    );
    // merge and delete+insert: one row per id, order 3 updated.
    for model in ["orders_merge", "orders_delete_insert"] {
        assert_eq!(
            count(p, &format!("select count(*) from {schema}.{model}")),
            5,
            "{model}"
        );
        assert_eq!(
            count(
                p,
                &format!("select amount from {schema}.{model} where id = 3")
            ),
            35,
            "{model}: the row of a key that comes again is replaced"
        );
        assert_eq!(
            count(
                p,
                &format!("select count(*) from {schema}.{model} where incremental_run")
            ),
            3,
            "{model}: ids 3 to 5 were written by an incremental run"
        );
    }

    // --full-refresh: rebuilt from scratch, is_incremental() false.
    p.ok(&["models", "run", "--full-refresh", "-s", "orders_append"]);
    assert_eq!(
        count(p, &format!("select count(*) from {schema}.orders_append")),
        5
    );
    assert_eq!(
        count(
            p,
            &format!("select count(*) from {schema}.orders_append where incremental_run")
        ),
        0
    );
}

#[test]
fn every_materialization_and_strategy_builds_on_duckdb() {
    let p = duckdb_project();
    every_materialization(&p, "main");
}

#[test]
fn every_materialization_and_strategy_builds_on_postgres() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = postgres_project(&db);
    every_materialization(&p, "public");
}

/// `on_schema_change`: a new column is left out, added, or fails the model.
fn schema_changes(p: &TestProject, schema: &str) {
    load_orders(p, &[(1, "paid", 10)]);
    for mode in ["ignore", "append_new_columns", "fail"] {
        p.write(
            &format!("models/inc_{mode}.sql"),
            format!(
                "{{{{ config(materialized='incremental', on_schema_change='{mode}') }}}}\nselect id, status from raw.orders\n"
            ),
        );
    }
    p.ok(&["models", "run"]);
    for mode in ["ignore", "append_new_columns", "fail"] {
        p.write(
            &format!("models/inc_{mode}.sql"),
            format!(
                "{{{{ config(materialized='incremental', on_schema_change='{mode}') }}}}\nselect id, status, 'new' as extra from raw.orders\n"
            ),
        );
    }
    let out = p.fails(&["models", "run"]);
    assert!(out.contains("on_schema_change is 'fail'"), "{out}");
    assert!(out.contains("new: extra"), "{out}");
    assert!(
        out.contains("done: 2 succeeded, 1 failed, 0 skipped"),
        "{out}"
    );
    let columns = |model: &str| {
        count(
            p,
            &format!(
                "select count(*) from information_schema.columns where table_schema = '{schema}' and table_name = '{model}'"
            ),
        )
    };
    assert_eq!(columns("inc_ignore"), 2, "ignore leaves the column out");
    assert_eq!(
        count(p, &format!("select count(*) from {schema}.inc_ignore")),
        2
    );
    assert_eq!(columns("inc_append_new_columns"), 3, "the column is added");
    assert_eq!(
        count(
            p,
            &format!("select count(*) from {schema}.inc_append_new_columns where extra = 'new'")
        ),
        1
    );
    assert_eq!(columns("inc_fail"), 2, "a failed model is left as it was");
    assert_eq!(
        count(p, &format!("select count(*) from {schema}.inc_fail")),
        1
    );
}

#[test]
fn schema_changes_are_ignored_appended_or_fail_on_duckdb() {
    schema_changes(&duckdb_project(), "main");
}

#[test]
fn schema_changes_are_ignored_appended_or_fail_on_postgres() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    schema_changes(&postgres_project(&db), "public");
}

/// A table model whose new version fails keeps its old one, and the models
/// that read it are skipped with the reason.
fn failed_swap(p: &TestProject, schema: &str) {
    load_orders(p, &[(1, "paid", 10), (2, "open", 20)]);
    p.write(
        "models/orders.sql",
        "{{ config(materialized='table') }}\nselect * from raw.orders\n",
    );
    p.write(
        "models/order_count.sql",
        "{{ config(materialized='table') }}\nselect count(*) as n from {{ ref('orders') }}\n",
    );
    p.write(
        "models/report.sql",
        "select n from {{ ref('order_count') }}\n",
    );
    p.write("models/independent.sql", "select 1 as one\n");
    p.ok(&["models", "run"]);
    p.write(
        "models/orders.sql",
        "{{ config(materialized='table') }}\nselect id, no_such_column from raw.orders\n",
    );
    let out = p.fails(&["models", "run"]);
    assert!(out.contains("ERROR  orders"), "{out}");
    assert!(
        out.contains("models/orders.sql"),
        "the error names the file: {out}"
    );
    assert!(
        out.contains("no_such_column"),
        "the warehouse's message: {out}"
    );
    assert!(
        out.contains("SKIP   order_count") && out.contains("upstream model orders failed"),
        "{out}"
    );
    assert!(
        out.contains("SKIP   report") && out.matches("upstream model orders failed").count() == 2,
        "two levels down the reason is the same: {out}"
    );
    assert!(out.contains("OK     independent"), "{out}");
    assert_eq!(
        count(p, &format!("select count(*) from {schema}.orders")),
        2,
        "the previous version stays"
    );
    assert_eq!(
        count(
            p,
            "select count(*) from information_schema.tables where table_name like 'orders__flowline%'"
        ),
        0,
        "nothing is left behind"
    );
    let report = json(&String::from_utf8_lossy(
        &p.flowline(&["models", "run", "--json"]).stdout,
    ));
    assert_eq!(report["ok"], false);
    assert_eq!(report["skipped"], 2);
}

#[test]
fn a_failed_table_keeps_its_old_version_and_skips_its_dependents_on_duckdb() {
    failed_swap(&duckdb_project(), "main");
}

#[test]
fn a_failed_table_keeps_its_old_version_and_skips_its_dependents_on_postgres() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    failed_swap(&postgres_project(&db), "public");
}

#[test]
fn a_pipeline_table_is_a_source_and_a_view_can_become_a_table() {
    let p = duckdb_project();
    p.write("data/orders.csv", common::orders_csv(1, 20));
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/orders.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.ok(&["run"]);
    p.write(
        "models/paid.sql",
        "select * from {{ source('raw', 'orders') }} where status = 'paid'\n",
    );
    p.ok(&["models", "run"]);
    assert_eq!(count(&p, "select count(*) from paid"), 16);
    p.write(
        "models/paid.sql",
        "{{ config(materialized='table') }}\nselect * from {{ source('raw', 'orders') }} where status = 'paid'\n",
    );
    p.ok(&["models", "run"]);
    assert_eq!(
        count(
            &p,
            "select count(*) from information_schema.tables where table_name = 'paid' and table_type = 'BASE TABLE'"
        ),
        1
    );
}

#[test]
fn selection_picks_models_by_graph_tag_and_path() {
    let p = duckdb_project();
    p.write("models/staging/stg_a.sql", "select 1 as id\n");
    p.write("models/staging/stg_b.sql", "select 2 as id\n");
    p.write(
        "models/marts/orders.sql",
        "{{ config(tags=['daily']) }}\nselect * from {{ ref('stg_a') }} union all select * from {{ ref('stg_b') }}\n",
    );
    p.write(
        "models/marts/report.sql",
        "select count(*) as n from {{ ref('orders') }}\n",
    );
    p.write("models/other.sql", "select 3 as id\n");
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["models", "ls", "--json"];
        all.extend_from_slice(args);
        let listed = json(&p.ok(&all));
        let mut names: Vec<String> = listed
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| m["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&["-s", "orders+"]), ["orders", "report"]);
    assert_eq!(names(&["-s", "+orders"]), ["orders", "stg_a", "stg_b"]);
    assert_eq!(names(&["-s", "1+report"]), ["orders", "report"]);
    assert_eq!(names(&["-s", "tag:daily"]), ["orders"]);
    assert_eq!(names(&["-s", "path:models/marts"]), ["orders", "report"]);
    assert_eq!(names(&["-s", "staging"]), ["stg_a", "stg_b"]);
    assert_eq!(
        names(&["-s", "stg_*", "other"]),
        ["other", "stg_a", "stg_b"]
    );
    assert_eq!(
        names(&["-s", "+report", "--exclude", "stg_b"]),
        ["orders", "report", "stg_a"]
    );
    assert_eq!(
        names(&["-s", "+report,path:models/staging"]),
        ["stg_a", "stg_b"]
    );
    assert_eq!(names(&[]).len(), 5);

    // Only the selected models are built.
    let out = p.ok(&["models", "run", "-s", "+orders"]);
    assert!(out.contains("done: 3 succeeded"), "{out}");
    assert_eq!(
        count(
            &p,
            "select count(*) from information_schema.tables where table_name in ('report', 'other')"
        ),
        0
    );
    let err = p.fails(&["models", "ls", "-s", "colour:red"]);
    assert!(err.contains("unknown method colour"), "{err}");
}

#[test]
fn a_ref_cycle_is_reported_with_its_path() {
    let p = duckdb_project();
    p.write("models/base.sql", "select 1 as id\n");
    p.write(
        "models/a.sql",
        "select * from {{ ref('c') }} join {{ ref('base') }} using (id)\n",
    );
    p.write("models/b.sql", "select * from {{ ref('a') }}\n");
    p.write("models/c.sql", "select * from {{ ref('b') }}\n");
    let out = p.fails(&["models", "run"]);
    assert!(out.contains("cycle"), "{out}");
    assert!(
        ["a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"]
            .iter()
            .any(|path| out.contains(path)),
        "{out}"
    );
}

#[test]
fn jinja_errors_name_the_file_and_line() {
    let p = duckdb_project();
    p.write("models/stg_orders.sql", "select 1 as id\n");
    p.write(
        "models/marts/bad.sql",
        "-- a model\nselect *\nfrom {{ ref('stg_orders' }}\n",
    );
    let out = p.fails(&["models", "run"]);
    assert!(out.contains("models/marts/bad.sql:3:"), "{out}");
    assert!(out.contains("syntax error"), "{out}");
    p.write(
        "models/marts/bad.sql",
        "select *\nfrom {{ ref('stg_order') }}\n",
    );
    let out = p.fails(&["models", "run"]);
    assert!(out.contains("models/marts/bad.sql:2:"), "{out}");
    assert!(out.contains("did you mean 'stg_orders'"), "{out}");
}

#[test]
fn vars_env_vars_macros_and_compile() {
    let p = duckdb_project();
    p.write("dbt_project.yml", "name: shop\nvars:\n  min_amount: 15\n");
    p.write(
        "macros/money.sql",
        "{% macro cents(column) %}({{ column }} * 100){% endmacro %}\n",
    );
    p.write(
        "models/amounts.sql",
        "select {{ cents('amount') }} as cents, '{{ env_var('FLOWLINE_TEST_REGION', 'eu') }}' as region\nfrom (values (10), (20)) as t(amount)\nwhere amount >= {{ var('min_amount') }}\n",
    );
    let out = p.ok(&["models", "compile"]);
    assert!(
        out.contains(".flowline/compiled/models/amounts.sql"),
        "{out}"
    );
    let compiled = std::fs::read_to_string(p.path().join(".flowline/compiled/models/amounts.sql"))
        .expect("compiled");
    assert!(compiled.contains("(amount * 100) as cents"), "{compiled}");
    assert!(compiled.contains("amount >= 15"), "{compiled}");
    let out = p
        .command(&["models", "run"])
        .env("FLOWLINE_TEST_REGION", "us")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rows = p.query("select cents, region from amounts");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["cents"], 2000);
    assert_eq!(rows[0]["region"], "us");
    // --vars wins over dbt_project.yml.
    p.ok(&["models", "run", "--vars", "{min_amount: 5}"]);
    assert_eq!(count(&p, "select count(*) from amounts"), 2);
    let out = p.fails(&["models", "run", "--vars", "[1, 2]"]);
    assert!(out.contains("--vars"), "{out}");
}

#[test]
fn independent_models_build_in_parallel_threads() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = postgres_project(&db);
    // Each model records when its query started and ended, around a
    // one-second sleep.
    for n in 0..4 {
        p.write(
            &format!("models/slow_{n}.sql"),
            "{{ config(materialized='table') }}
\
             with s as materialized (select clock_timestamp() as started),\
             w as materialized (select pg_sleep(1) from s)\
             select s.started, clock_timestamp() as ended from s, w\n",
        );
    }
    p.write(
        "models/all_slow.sql",
        "select * from {{ ref('slow_0') }} union all select * from {{ ref('slow_1') }} union all select * from {{ ref('slow_2') }} union all select * from {{ ref('slow_3') }}\n",
    );
    let out = p.ok(&["models", "run", "--threads", "4"]);
    assert!(out.contains("done: 5 succeeded"), "{out}");
    assert_eq!(
        count(
            &p,
            "select count(*) from all_slow where (select max(started) from all_slow) < ended"
        ),
        4,
        "on 4 threads, every model started before any ended"
    );
    p.ok(&["models", "run", "--threads", "1"]);
    assert_eq!(
        count(
            &p,
            "select count(*) from all_slow a join all_slow b on a.started < b.started \
             where b.started < a.ended"
        ),
        0,
        "on 1 thread, no model started before the one before it ended"
    );
    assert_eq!(count(&p, "select count(*) from all_slow"), 4);
}

#[test]
fn many_models_on_several_threads_build_on_duckdb() {
    let p = duckdb_project();
    for n in 0..12 {
        let materialized = if n % 2 == 0 { "table" } else { "view" };
        p.write(
            &format!("models/m_{n}.sql"),
            format!(
                "{{{{ config(materialized='{materialized}', schema='s{}') }}}}\nselect {n} as n\n",
                n % 3
            ),
        );
    }
    let union: Vec<String> = (0..12)
        .map(|n| format!("select * from {{{{ ref('m_{n}') }}}}"))
        .collect();
    p.write(
        "models/total.sql",
        format!(
            "{{{{ config(materialized='table') }}}}\nselect sum(n) as n from ({}) t\n",
            union.join(" union all ")
        ),
    );
    let out = p.ok(&["models", "run", "--threads", "4"]);
    assert!(out.contains("done: 13 succeeded"), "{out}");
    assert_eq!(count(&p, "select n from total"), 66);
}

#[test]
fn a_dbt_project_folder_without_flowline_toml_runs_on_embedded_duckdb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |relative: &str, text: &str| {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "dbt_project.yml",
        "name: jaffle\nversion: '1.0'\nprofile: jaffle\nmodel-paths: [\"transform\"]\nmacro-paths: [\"my_macros\"]\nvars:\n  status: paid\nmodels:\n  jaffle:\n    +materialized: table\n    staging:\n      materialized: view\n      +tags: [\"staging\"]\n",
    );
    write(
        "my_macros/upper.sql",
        "{% macro shout(x) %}upper({{ x }}){% endmacro %}\n",
    );
    write(
        "transform/staging/stg_payments.sql",
        "select * from (values (1, 'paid', 10), (2, 'open', 5), (3, 'paid', 7)) as t(id, status, amount)\n",
    );
    write(
        "transform/marts/paid.sql",
        "select id, {{ shout('status') }} as status from {{ ref('stg_payments') }} where status = '{{ var('status') }}'\n",
    );
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowline"))
            .arg("--project")
            .arg(dir.path())
            .args(args)
            .output()
            .expect("run flowline")
    };
    let out = run(&["models", "ls", "--json", "-s", "tag:staging"]);
    let listed = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(listed[0]["name"], "stg_payments");
    assert_eq!(listed[0]["materialized"], "view");
    let out = run(&["models", "run"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let warehouse = dir.path().join(".flowline/warehouse.duckdb");
    let conn = duckdb::Connection::open(&warehouse).expect("the embedded warehouse is there");
    let (n, kind): (i64, String) = conn
        .query_row(
            "select count(*), max(t.table_type) from paid, information_schema.tables t where t.table_name = 'paid'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("paid is there");
    assert_eq!((n, kind.as_str()), (2, "BASE TABLE"));
    let upper: String = conn
        .query_row("select min(status) from paid", [], |row| row.get(0))
        .expect("a row");
    assert_eq!(upper, "PAID");
    drop(conn);
    // `flowline sql` queries the same warehouse.
    let out = run(&["sql", "--json", "select count(*) as n from paid"]);
    let rows = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows[0]["n"], 2, "{rows}");
}

#[test]
fn a_job_builds_models_after_its_pipeline_and_logs_each_model() {
    let p = duckdb_project();
    p.write("data/orders.csv", common::orders_csv(1, 30));
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/orders.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.write(
        "models/stg_orders.sql",
        "select * from {{ source('raw', 'orders') }}\n",
    );
    p.write(
        "models/marts/order_totals.sql",
        "{{ config(materialized='table') }}\nselect status, count(*) as n from {{ ref('stg_orders') }} group by status\n",
    );
    p.write("models/unrelated.sql", "select 1 as x\n");
    p.write(
        "models/schema.yml",
        "models:\n  - name: order_totals\n    columns:\n      - name: status\n        tests: [unique, not_null]\n",
    );
    p.write(
        "jobs/nightly.toml",
        "[[step]]\nname = \"load\"\npipeline = \"orders\"\n\n[[step]]\nname = \"transform\"\nafter = [\"load\"]\nmodels = \"+order_totals\"\n",
    );
    let out = p.ok(&["jobs", "run", "nightly"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(count(&p, "select sum(n) from order_totals"), 30);
    assert_eq!(
        count(
            &p,
            "select count(*) from information_schema.tables where table_name = 'unrelated'"
        ),
        0,
        "only the selection is built"
    );
    let runs = json(&p.ok(&["jobs", "runs", "nightly", "--json"]));
    let run_id = runs["runs"][0]["run_id"]
        .as_str()
        .expect("a run")
        .to_string();
    let logs = p.ok(&["jobs", "logs", &run_id, "transform"]);
    assert!(logs.contains("OK     stg_orders"), "{logs}");
    assert!(logs.contains("OK     order_totals"), "{logs}");
    assert!(logs.contains("PASS   unique_order_totals_status"), "{logs}");

    // A failing model fails the step.
    p.write(
        "models/marts/order_totals.sql",
        "{{ config(materialized='table') }}\nselect nope from {{ ref('stg_orders') }}\n",
    );
    let out = p.fails(&["jobs", "run", "nightly"]);
    assert!(out.contains("failed"), "{out}");
}

/// A running `flowline serve`, killed when dropped.
struct Serve(std::process::Child);

impl Serve {
    /// Starts `flowline serve` on `p` and waits for its first line.
    fn start(p: &TestProject) -> Serve {
        use std::io::BufRead;
        let mut child = p
            .command(&["serve"])
            .env("FLOWLINE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn flowline serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        assert!(
            line.starts_with("serving"),
            "flowline serve did not start: {line:?}"
        );
        Serve(child)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn models_run_through_the_process_that_owns_the_warehouse() {
    let p = duckdb_project();
    load_orders(&p, &[(1, "paid", 10), (2, "open", 20)]);
    write_models(&p);
    let _serve = Serve::start(&p);
    let out = p.ok(&["models", "run", "--threads", "4"]);
    assert!(out.contains("done: 5 succeeded"), "{out}");
    load_orders(&p, &[(1, "paid", 10), (2, "open", 20), (3, "paid", 5)]);
    p.ok(&["models", "run"]);
    assert_eq!(count(&p, "select total from marts.revenue"), 15);
    assert_eq!(
        count(
            &p,
            "select count(*) from orders_merge where incremental_run"
        ),
        2
    );
    // A failing table keeps its old version there too.
    p.write(
        "models/marts/revenue.sql",
        "{{ config(materialized='table', schema='marts') }}\nselect missing from {{ ref('stg_orders') }}\n",
    );
    let out = p.fails(&["models", "run", "-s", "revenue"]);
    assert!(out.contains("missing"), "{out}");
    assert_eq!(count(&p, "select total from marts.revenue"), 15);
}

/// Generic and singular data tests, passing and failing with the failing
/// rows counted, `where` and `severity`, relationships across models.
fn data_tests(p: &TestProject) {
    load_orders(
        p,
        &[
            (1, "paid", 10),
            (2, "open", 20),
            (2, "lost", 5),
            (4, "paid", 0),
        ],
    );
    p.write(
        "models/customers.sql",
        "{{ config(materialized='table') }}\nselect * from (values (10), (20)) as t(id)\n",
    );
    p.write(
        "models/orders.sql",
        "{{ config(materialized='table') }}\nselect id, status, amount as customer_id from raw.orders\n",
    );
    p.write(
        "models/schema.yml",
        r#"version: 2
models:
  - name: orders
    columns:
      - name: id
        data_tests:
          - not_null
          - unique
          - unique:
              where: "status <> 'lost'"
      - name: status
        tests:
          - accepted_values:
              values: ['paid', 'open']
          - accepted_values:
              name: known_statuses
              values: ['paid', 'open', 'lost']
      - name: customer_id
        tests:
          - relationships:
              to: ref('customers')
              field: id
              config:
                severity: warn
  - name: customers
    columns:
      - name: id
        tests: [not_null, unique]
"#,
    );
    p.write(
        "tests/no_free_orders.sql",
        "select * from {{ ref('orders') }} where customer_id = 0\n",
    );
    p.write(
        "tests/few_orders.sql",
        "{{ config(severity='warn') }}\nselect * from {{ ref('orders') }} where id > 100\n",
    );
    let out = p.fails(&["models", "build"]);
    assert!(
        out.contains("done: 2 succeeded, 0 failed, 0 skipped"),
        "{out}"
    );
    assert!(out.contains("PASS   not_null_orders_id"), "{out}");
    assert!(
        out.contains("FAIL   unique_orders_id: 1 failing rows"),
        "{out}"
    );
    assert!(
        out.contains("FAIL   accepted_values_orders_status: 1 failing rows"),
        "{out}"
    );
    assert!(
        out.contains("WARN   relationships_orders_customer_id: 2 failing rows"),
        "{out}"
    );
    assert!(
        out.contains("FAIL   no_free_orders: 1 failing rows"),
        "{out}"
    );
    assert!(out.contains("PASS   few_orders"), "{out}");
    assert!(out.contains("PASS   unique_customers_id"), "{out}");
    assert!(out.contains("PASS   known_statuses"), "{out}");
    assert!(out.contains("tests: 6 passed, 3 failed, 1 warned"), "{out}");
    // The `where` keeps order 2 once: that unique test passes.
    let report = json(&String::from_utf8_lossy(
        &p.flowline(&["models", "test", "--json", "-s", "orders"])
            .stdout,
    ));
    let tests = report["tests"].as_array().expect("tests");
    let status = |name: &str| {
        tests
            .iter()
            .find(|t| t["test"] == name)
            .map(|t| (t["status"].clone(), t["failures"].clone()))
    };
    assert_eq!(status("unique_orders_id"), Some(("fail".into(), 1.into())));
    assert_eq!(
        status("unique_orders_id_2"),
        Some(("pass".into(), 0.into()))
    );
    assert_eq!(report["ok"], false);
    // The tests that read customers (the relationship too) only pass or
    // warn: the command succeeds.
    let out = p.ok(&["models", "test", "-s", "customers"]);
    assert!(out.contains("tests: 2 passed, 0 failed, 1 warned"), "{out}");
}

#[test]
fn data_tests_pass_fail_and_warn_on_duckdb() {
    data_tests(&duckdb_project());
}

#[test]
fn data_tests_pass_fail_and_warn_on_postgres() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    data_tests(&postgres_project(&db));
}

/// Seeds load with inferred types and the types of the yml, models read
/// them with `ref()`, and `build` loads them first.
fn seeds(p: &TestProject, schema: &str) {
    p.write(
        "seeds/countries.csv",
        "code,name,population,joined,eu\nNL,Netherlands,17.9,1958-01-01,true\nNO,Norway,5.5,,false\nFR,France,68.2,1958-01-01,true\n",
    );
    p.write("seeds/codes.csv", "code\n007\n042\n");
    p.write(
        "seeds/properties.yml",
        "version: 2\nseeds:\n  - name: codes\n    config:\n      column_types:\n        code: varchar\n",
    );
    p.write(
        "models/eu_population.sql",
        "{{ config(materialized='table') }}\nselect sum(population) as population from {{ ref('countries') }} where eu\n",
    );
    let out = p.ok(&["models", "build"]);
    assert!(out.contains("OK     countries (seed)"), "{out}");
    assert!(out.contains("done: 3 succeeded"), "{out}");
    assert_eq!(
        count(p, "select cast(population as integer) from eu_population"),
        86
    );
    let types = p.query(&format!(
        "select column_name, data_type from information_schema.columns where table_schema = '{schema}' and table_name in ('countries', 'codes') order by table_name, ordinal_position"
    ));
    let types: Vec<String> = types
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["column_name"].as_str().unwrap_or(""),
                r["data_type"].as_str().unwrap_or("").to_lowercase()
            )
        })
        .collect();
    // codes, then countries.
    let text = if schema == "main" {
        "varchar"
    } else {
        "character varying"
    };
    assert_eq!(types[0], format!("code:{text}"), "{types:?}");
    assert!(types[3].starts_with("population:double"), "{types:?}");
    assert!(types[4].starts_with("joined:date"), "{types:?}");
    assert!(types[5].starts_with("eu:boolean"), "{types:?}");
    assert_eq!(
        count(p, "select count(*) from codes where code = '007'"),
        1,
        "kept as text"
    );
    assert_eq!(
        count(p, "select count(*) from countries where joined is null"),
        1
    );
    // Seeding again replaces the rows.
    p.write("seeds/codes.csv", "code\n001\n");
    p.ok(&["models", "seed", "-s", "codes"]);
    assert_eq!(count(p, "select count(*) from codes"), 1);
}

#[test]
fn seeds_load_with_types_and_models_read_them_on_duckdb() {
    seeds(&duckdb_project(), "main");
}

#[test]
fn seeds_load_with_types_and_models_read_them_on_postgres() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    seeds(&postgres_project(&db), "public");
}

#[test]
fn two_models_built_as_one_relation_are_refused() {
    let p = duckdb_project();
    p.write("models/orders.sql", "select 1 as id\n");
    p.write(
        "models/orders_v2.sql",
        "{{ config(alias='orders') }}\nselect 2 as id\n",
    );
    let out = p.fails(&["models", "ls"]);
    assert!(out.contains("builds the same relation (orders)"), "{out}");
}

#[test]
fn validate_checks_the_models_too() {
    let p = duckdb_project();
    p.write("models/a.sql", "select * from {{ ref('b') }}\n");
    p.write("models/b.sql", "select * from {{ ref('a') }}\n");
    let out = p.fails(&["validate"]);
    assert!(
        out.contains("a -> b -> a") || out.contains("b -> a -> b"),
        "{out}"
    );
    p.write("models/b.sql", "select 1 as id\n");
    p.ok(&["validate"]);
}

/// Two snapshots of `raw.customers` over three runs: `timestamp` (with
/// hard deletes invalidated) and `check`; a model reads one with `ref()`.
fn snapshots(p: &TestProject) {
    p.ok(&["sql", "CREATE SCHEMA IF NOT EXISTS raw"]);
    p.ok(&[
        "sql",
        "CREATE TABLE raw.customers (id INTEGER, name VARCHAR, tier VARCHAR, updated_at TIMESTAMP)",
    ]);
    p.ok(&[
        "sql",
        "INSERT INTO raw.customers VALUES (1, 'ann', 'gold', '2024-01-01 00:00:00'), \
         (2, 'bob', 'silver', '2024-01-01 00:00:00'), (3, 'cy', 'silver', '2024-01-01 00:00:00')",
    ]);
    p.write(
        "snapshots/customers.sql",
        "{% snapshot customers_ts %}\n\
         {{ config(target_schema='snapshots', unique_key='id', strategy='timestamp', updated_at='updated_at', invalidate_hard_deletes=True) }}\n\
         select * from raw.customers\n\
         {% endsnapshot %}\n\n\
         {% snapshot customers_check %}\n\
         {{ config(target_schema='snapshots', unique_key='id', strategy='check', check_cols=['tier']) }}\n\
         select id, name, tier from raw.customers\n\
         {% endsnapshot %}\n",
    );
    p.write(
        "models/current_tiers.sql",
        "{{ config(materialized='table') }}\nselect id, tier from {{ ref('customers_ts') }} where dbt_valid_to is null\n",
    );
    let listed = p.ok(&["models", "ls", "-s", "resource_type:snapshot"]);
    assert!(
        listed.contains("customers_check") && listed.contains("snapshot"),
        "{listed}"
    );
    assert!(!listed.contains("current_tiers"), "{listed}");

    // Run 1: every row is its first version.
    let out = p.ok(&["models", "snapshot"]);
    assert!(
        out.contains("created snapshot \"snapshots\".\"customers_ts\""),
        "{out}"
    );
    assert!(
        out.contains("done: 2 succeeded, 0 failed, 0 skipped"),
        "{out}"
    );
    let ts = |sql: &str| count(p, &sql.replace("{t}", "snapshots.customers_ts"));
    let check = |sql: &str| count(p, &sql.replace("{t}", "snapshots.customers_check"));
    assert_eq!(ts("select count(*) from {t} where dbt_valid_to is null"), 3);
    assert_eq!(
        ts("select count(*) from {t} where dbt_valid_from = timestamp '2024-01-01 00:00:00'"),
        3,
        "timestamp: a version is valid from its updated_at"
    );
    assert_eq!(
        ts("select count(distinct dbt_scd_id) from {t}"),
        3,
        "each version has its own id"
    );

    // Run 2: bob changes tier (later updated_at), ann's name changes with
    // the same updated_at, cy is deleted, dan is new.
    p.ok(&[
        "sql",
        "UPDATE raw.customers SET tier = 'gold', updated_at = '2024-02-01 00:00:00' WHERE id = 2",
    ]);
    p.ok(&["sql", "UPDATE raw.customers SET name = 'anne' WHERE id = 1"]);
    p.ok(&["sql", "DELETE FROM raw.customers WHERE id = 3"]);
    p.ok(&[
        "sql",
        "INSERT INTO raw.customers VALUES (4, 'dan', 'silver', '2024-02-01 00:00:00')",
    ]);
    let out = p.ok(&[
        "models",
        "snapshot",
        "-s",
        "customers_ts",
        "customers_check",
    ]);
    assert!(
        out.contains("\"customers_ts\": 1 new, 1 changed, 1 deleted"),
        "{out}"
    );
    assert!(
        out.contains("\"customers_check\": 1 new, 1 changed"),
        "{out}"
    );
    assert_eq!(ts("select count(*) from {t}"), 5);
    assert_eq!(
        ts(
            "select count(*) from {t} where id = 2 and dbt_valid_to = timestamp '2024-02-01 00:00:00' and tier = 'silver'"
        ),
        1,
        "bob's old version ends when the new one starts"
    );
    assert_eq!(
        ts("select count(*) from {t} where id = 3 and dbt_valid_to is not null"),
        1,
        "a deleted row's version is closed"
    );
    assert_eq!(
        ts("select count(*) from {t} where id = 1 and name = 'ann' and dbt_valid_to is null"),
        1,
        "timestamp: a change without a later updated_at is not a new version"
    );
    assert_eq!(check("select count(*) from {t}"), 5);
    assert_eq!(
        check("select count(*) from {t} where id = 3 and dbt_valid_to is null"),
        1,
        "hard deletes are ignored by default"
    );

    // Run 3: ann changes tier; cy comes back. `build` records the
    // snapshots and then builds the model that reads one.
    p.ok(&[
        "sql",
        "UPDATE raw.customers SET tier = 'bronze', updated_at = '2024-03-01 00:00:00' WHERE id = 1",
    ]);
    p.ok(&[
        "sql",
        "INSERT INTO raw.customers VALUES (3, 'cy', 'silver', '2024-03-01 00:00:00')",
    ]);
    let out = p.ok(&["models", "build"]);
    assert!(
        out.contains("done: 3 succeeded, 0 failed, 0 skipped"),
        "{out}"
    );
    assert_eq!(ts("select count(*) from {t}"), 7);
    assert_eq!(
        ts("select count(*) from {t} where id = 3"),
        2,
        "a row that comes back starts a new version"
    );
    assert_eq!(check("select count(*) from {t}"), 6);
    assert_eq!(count(p, "select count(*) from current_tiers"), 4);
    assert_eq!(
        count(
            p,
            "select count(*) from current_tiers where id = 1 and tier = 'bronze'"
        ),
        1
    );

    // `run` builds models only; a key that comes twice fails the snapshot
    // and leaves its history as it was.
    let out = p.ok(&["models", "run"]);
    assert!(
        out.contains("done: 1 succeeded, 0 failed, 0 skipped"),
        "{out}"
    );
    p.ok(&[
        "sql",
        "INSERT INTO raw.customers VALUES (4, 'dan', 'gold', '2024-04-01 00:00:00')",
    ]);
    let out = p.fails(&["models", "snapshot", "-s", "customers_ts"]);
    assert!(out.contains("is not unique"), "{out}");
    assert_eq!(ts("select count(*) from {t}"), 7);
}

#[test]
fn snapshots_keep_versions_over_three_runs_on_duckdb() {
    snapshots(&duckdb_project());
}

#[test]
fn snapshots_keep_versions_over_three_runs_on_postgres() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    snapshots(&postgres_project(&db));
}

#[test]
fn a_snapshot_without_its_strategy_names_what_to_write() {
    let p = duckdb_project();
    p.write(
        "snapshots/orders.sql",
        "{% snapshot orders_snapshot %}\n{{ config(unique_key='id', strategy='timestamp') }}\nselect 1 as id\n{% endsnapshot %}\n",
    );
    let out = p.fails(&["models", "snapshot"]);
    assert!(
        out.contains("snapshots/orders.sql") && out.contains("updated_at"),
        "{out}"
    );
    p.write(
        "snapshots/orders.sql",
        "{% snapshot orders_snapshot %}\nselect 1 as id\n",
    );
    let out = p.fails(&["models", "snapshot"]);
    assert!(
        out.contains("snapshots/orders.sql:1") && out.contains("endsnapshot"),
        "{out}"
    );
}

#[test]
fn build_tests_each_model_and_a_failing_test_skips_what_is_downstream() {
    let p = duckdb_project();
    p.write(
        "models/orders.sql",
        "{{ config(materialized='table') }}\nselect 1 as id union all select 1\n",
    );
    p.write(
        "models/order_totals.sql",
        "select id, count(*) as n from {{ ref('orders') }} group by id\n",
    );
    p.write("models/customers.sql", "select 7 as id\n");
    p.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: id\n        tests: [unique]\n  - name: order_totals\n    columns:\n      - name: id\n        tests: [not_null]\n  - name: customers\n    columns:\n      - name: id\n        tests: [not_null]\n",
    );
    let out = p.fails(&["models", "build"]);
    assert!(
        out.contains("FAIL   unique_orders_id: 1 failing rows"),
        "{out}"
    );
    assert!(
        out.contains("SKIP   order_totals (view) skipped: a test on upstream model orders failed"),
        "{out}"
    );
    assert!(out.contains("SKIP   not_null_order_totals_id"), "{out}");
    assert!(out.contains("PASS   not_null_customers_id"), "{out}");
    assert!(
        out.contains("done: 2 succeeded, 0 failed, 1 skipped"),
        "{out}"
    );
    assert!(
        out.contains("tests: 1 passed, 1 failed, 0 warned, 1 skipped"),
        "{out}"
    );
    // The test ran right after its model, before what reads it.
    let at = |text: &str| out.find(text).unwrap_or_else(|| panic!("{text}: {out}"));
    assert!(at("unique_orders_id") < at("order_totals (view)"), "{out}");
    // `run` has no tests: everything builds.
    let out = p.ok(&["models", "run"]);
    assert!(
        out.contains("done: 3 succeeded, 0 failed, 0 skipped"),
        "{out}"
    );
}

#[test]
fn build_load_upstream_runs_the_pipelines_the_models_read_first() {
    let p = duckdb_project();
    p.write("data/orders.csv", common::orders_csv(1, 20));
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/orders.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.write(
        "pipelines/unrelated.toml",
        "[source]\nkind = \"file\"\npath = \"data/missing.csv\"\n\n[destination]\ntable = \"raw.other\"\n",
    );
    p.write(
        "models/paid.sql",
        "{{ config(materialized='table') }}\nselect * from {{ source('raw', 'orders') }} where status = 'paid'\n",
    );
    p.write("models/constant.sql", "select 1 as one\n");
    let out = p.ok(&["models", "build", "--load-upstream", "-s", "paid"]);
    let at = |text: &str| out.find(text).unwrap_or_else(|| panic!("{text}: {out}"));
    assert!(at("orders: ") < at("OK     paid"), "{out}");
    assert!(!out.contains("unrelated"), "only the pipelines read: {out}");
    assert_eq!(count(&p, "select count(*) from paid"), 16);
    let out = p.ok(&["models", "build", "--load-upstream", "-s", "constant"]);
    assert!(
        out.contains("no pipeline loads the sources of the selected models"),
        "{out}"
    );
    // A failed load builds nothing.
    p.write("data/more_orders.csv", common::orders_csv(21, 5));
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/more_orders.csv\"\n\n[[transform]]\nsql = \"select no_such_column from input\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    let out = p.fails(&["models", "build", "--load-upstream", "-s", "paid"]);
    assert!(
        out.contains("pipeline orders failed: the models were not built"),
        "{out}"
    );
    assert!(!out.contains("OK     paid"), "{out}");
}
