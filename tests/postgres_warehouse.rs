//! Postgres as the warehouse: loads, write dispositions, schema evolution,
//! `flowline sql` and `status` against it, and kill -9 safety.

mod common;

use std::time::Duration;

use common::{PgDatabase, TestProject, orders_csv, run_and_kill};

fn project(db: &PgDatabase, pipeline: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"pgw\"\n\n[warehouse]\nkind = \"postgres\"\nconnection = \"wh\"\n\n[connections.wh]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    p.write("pipelines/orders.toml", pipeline);
    p
}

#[test]
fn files_load_into_postgres_with_merge_replace_and_evolution() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = project(
        &db,
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\ntable = \"raw.orders\"\nwrite = \"merge\"\nprimary_key = [\"id\"]\n",
    );
    p.write(
        "data/1.csv",
        "id,name,amount,at\n1,a,1.5,2024-01-01 10:00:00\n2,b,2.5,2024-01-02 10:00:00\n2,b2,3.5,\n",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 2);
    let rows = p.query("select name from raw.orders where id = 2");
    assert_eq!(rows[0]["name"], "b2", "last row wins within a load");

    p.write(
        "data/2.csv",
        "id,name,amount,note\n2,B,9.25,x\n3,c,0.001,y\n",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 3);
    assert_eq!(
        p.scalar("select count(*) from raw.orders where note = 'x' and name = 'B'"),
        1,
        "new column added"
    );
    // A batch without some of the table's columns updates rows in place:
    // the columns it lacks keep their values.
    p.write("data/2b.csv", "id,name\n3,C\n");
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders where id = 3 and name = 'C' and note = 'y' and amount > 0"),
        1,
        "merge keeps the columns a batch does not have"
    );
    assert_eq!(p.scalar("select count(*) from raw.orders"), 3);

    let status = p.ok(&["status"]);
    assert!(status.contains("files: 3"), "{status}");

    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\ntable = \"raw.orders\"\nwrite = \"replace\"\n",
    );
    p.write("data/3.csv", "id,name,amount\n4,d,1\n");
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        7,
        "replace reloads every file"
    );

    p.write("data/4.csv", "id,flag\n5,true\n");
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/4.csv\"\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders where flag"), 1);
    p.write("data/5.csv", "id,flag\nsix,false\n");
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/5.csv\"\n[destination]\ntable = \"raw.orders\"\n",
    );
    // "six" is no number: the column widens to text, every value kept.
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders where id = 'six'"),
        1
    );
    assert_eq!(
        p.scalar("select count(*) from raw.orders where id = '1'"),
        1
    );
    let ty = p.query(
        "select data_type from information_schema.columns \
         where table_schema = 'raw' and table_name = 'orders' and column_name = 'id'",
    );
    assert_eq!(ty[0]["data_type"], "text");
}

#[test]
fn a_pipeline_can_load_into_its_own_postgres_connection() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"x\"\n[connections.pg]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    p.write(
        "pipelines/o.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\nconnection = \"pg\"\ntable = \"o\"\n",
    );
    p.write("data/a.csv", orders_csv(1, 50));
    p.ok(&["run"]);
    let out = p.ok(&["run"]);
    assert!(
        out.contains(" 0 rows"),
        "state kept in the destination: {out}"
    );
    let status = p.ok(&["status"]);
    assert!(status.contains("files: 1"), "{status}");
}

#[test]
fn postgres_types_round_trip_through_the_postgres_warehouse() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute(
        "CREATE TABLE src (id int PRIMARY KEY, n numeric(38,6), d date, ts timestamptz, iv interval, b bytea, t text, f double precision);
         INSERT INTO src VALUES (1, -12345678901234567890.123456, '2024-02-29', '2024-06-01 12:00:00+02', '1 day 2 hours', '\\x00ff', 'héllo', 'NaN'),
                                (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL), (3, 0.000001, '1999-01-01', '1970-01-01 00:00:00+00', '-1 mons', '', '', -0.5);",
    );
    let p = project(
        &db,
        "[source]\nkind = \"postgres\"\nconnection = \"wh\"\ntable = \"src\"\n[destination]\ntable = \"copy.dst\"\n",
    );
    p.ok(&["run"]);
    let same = p.scalar(
        "select count(*) from src s join copy.dst d using (id) where s.n is not distinct from d.n \
         and s.d is not distinct from d.d and s.ts is not distinct from d.ts and s.iv is not distinct from d.iv \
         and s.b is not distinct from d.b and s.t is not distinct from d.t and s.f is not distinct from d.f",
    );
    assert_eq!(same, 3);
}

fn kill_9_into_postgres(write: &str) {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let keys = if write == "merge" {
        "primary_key = [\"id\"]\n"
    } else {
        ""
    };
    let p = project(
        &db,
        &format!(
            "[source]\nkind = \"file\"\npath = \"data/*.csv\"\nbatch_size = 5000\n[destination]\ntable = \"raw.orders\"\nwrite = \"{write}\"\n{keys}"
        ),
    );
    let (files, per_file) = (16i64, 20_000i64);
    for f in 0..files {
        p.write(
            &format!("data/part-{f:03}.csv"),
            orders_csv(f * per_file + 1, per_file),
        );
    }
    let mut killed = 0;
    for delay in [80u64, 250, 500, 900, 1400] {
        if run_and_kill(&p, Duration::from_millis(delay)) {
            killed += 1;
        }
    }
    assert!(killed > 0, "no run was killed mid-load");
    let total = files * per_file;
    for _ in 0..2 {
        p.ok(&["run"]);
        assert_eq!(p.scalar("select count(*) from raw.orders"), total);
        assert_eq!(p.scalar("select count(distinct id) from raw.orders"), total);
        assert_eq!(
            p.scalar("select sum(id) from raw.orders"),
            total * (total + 1) / 2
        );
    }
}

#[test]
fn append_into_postgres_survives_kill_9() {
    kill_9_into_postgres("append");
}

#[test]
fn merge_into_postgres_survives_kill_9() {
    kill_9_into_postgres("merge");
}

#[test]
fn replace_into_postgres_survives_kill_9() {
    kill_9_into_postgres("replace");
}

#[test]
fn nested_json_lands_as_json_text_and_bad_destinations_are_caught_by_validate() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = project(
        &db,
        "[source]\nkind = \"file\"\npath = \"data/*.ndjson\"\n[destination]\ntable = \"ev\"\n",
    );
    p.write(
        "data/a.ndjson",
        "{\"id\": 1, \"user\": {\"name\": \"ann\"}, \"tags\": [\"a\", \"b\"]}\n{\"id\": 2}\n",
    );
    p.ok(&["run"]);
    assert_eq!(
        p.scalar(
            "select count(*) from ev where (\"user\"::jsonb)->>'name' = 'ann' and tags::jsonb ? 'b'"
        ),
        1
    );
    assert_eq!(
        p.scalar("select count(*) from ev where \"user\" is null"),
        1
    );

    p.write(
        "pipelines/bad.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\n[destination]\nconnection = \"nosuch\"\ntable = \"t\"\n",
    );
    let err = p.fails(&["validate"]);
    assert!(err.contains("connections.nosuch"), "{err}");
    let out = p.flowline(&["run", "--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a report despite the bad pipeline");
    let runs = report["runs"].as_array().expect("runs");
    assert!(
        runs.iter()
            .any(|r| r["pipeline"] == "bad" && r["status"] == "failed")
    );
    assert!(
        runs.iter()
            .any(|r| r["pipeline"] == "orders" && r["status"] == "succeeded")
    );
}

#[test]
fn replace_keeps_views_and_indexes_on_the_table() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = project(
        &db,
        "[source]\nkind = \"file\"\npath = \"data/p.csv\"\n[destination]\ntable = \"raw.prices\"\nwrite = \"replace\"\n",
    );
    p.write("data/p.csv", "sku,price\nA,1\nB,2\n");
    p.ok(&["run"]);
    db.execute("CREATE VIEW cheap AS SELECT sku FROM raw.prices WHERE price < 2; CREATE INDEX prices_sku ON raw.prices (sku);");
    p.write("data/p.csv", "sku,price,note\nC,0,new\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.prices"), 1);
    assert_eq!(
        p.scalar("select count(*) from cheap"),
        1,
        "the view survives and sees the new rows"
    );
    assert_eq!(
        p.scalar("select count(*) from pg_indexes where indexname = 'prices_sku'"),
        1
    );
}
