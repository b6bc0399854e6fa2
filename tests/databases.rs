//! SQL database sources against real servers: PostgreSQL and MariaDB on
//! localhost (127.0.0.1:5432 and :3306), and SQLite files.

mod common;

use common::{MyDatabase, PgDatabase, TestProject};

fn project_with(url: &str, source: &str, destination: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!("[project]\nname = \"db\"\n\n[connections.db]\nurl = \"{url}\"\n"),
    );
    p.write(
        "pipelines/load.toml",
        format!("[source]\n{source}\n\n[destination]\n{destination}\n"),
    );
    p
}

/// Asserts that `condition` holds for the row `id = {id}` of `table`.
fn holds(p: &TestProject, table: &str, id: i64, condition: &str) {
    let n = p.scalar(&format!(
        "select count(*) from {table} where id = {id} and ({condition})"
    ));
    assert_eq!(n, 1, "row {id} of {table}: expected {condition}");
}

fn column_types(p: &TestProject, table: &str) -> Vec<String> {
    p.query(&format!(
        "select column_name || ' ' || data_type as c from information_schema.columns \
         where table_name = '{table}' order by ordinal_position"
    ))
    .iter()
    .map(|r| r["c"].as_str().unwrap_or("").to_string())
    .collect()
}

const PG_ALL_TYPES: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE all_types (
  id int PRIMARY KEY, i2 smallint, i4 integer, i8 bigint,
  n38 numeric(38,0), n10 numeric(10,3), f4 real, f8 double precision,
  b boolean, t text, vc varchar(10), ch char(3),
  d date, tm time, ts timestamp, tstz timestamptz, iv interval,
  u uuid, j json, jb jsonb, by bytea, m mood, ia int[], ta text[]
);
INSERT INTO all_types VALUES
 (1, -32768, -2147483648, -9223372036854775808,
  99999999999999999999999999999999999999, -1234567.891, 1.5, 'NaN',
  true, 'héllo ☃ 日本', '', 'ab',
  '2024-02-29', '23:59:59.999999', '2024-01-01 12:34:56.789012', '2024-06-01 12:00:00+02',
  '1 year 2 mons 3 days 04:05:06',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '{"b": [1, 2]}', '\xdeadbeef', 'happy',
  '{1,NULL,3}', '{"x","y"}'),
 (2, 32767, 2147483647, 9223372036854775807,
  -99999999999999999999999999999999999999, 0.001, '-Infinity', 'Infinity',
  false, NULL, NULL, NULL, '0001-01-01', '00:00:00', '1970-01-01 00:00:00', '1999-12-31 23:59:59-08',
  '-3 days', NULL, NULL, NULL, '', 'sad', '{}', '{}'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

#[test]
fn postgres_types_map_faithfully_with_nulls_and_edge_values() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute(PG_ALL_TYPES);
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"public.all_types\"",
        "table = \"raw.all_types\"",
    );
    p.ok(&["run"]);
    assert_eq!(
        column_types(&p, "all_types"),
        [
            "id INTEGER",
            "i2 SMALLINT",
            "i4 INTEGER",
            "i8 BIGINT",
            "n38 DECIMAL(38,0)",
            "n10 DECIMAL(10,3)",
            "f4 FLOAT",
            "f8 DOUBLE",
            "b BOOLEAN",
            "t VARCHAR",
            "vc VARCHAR",
            "ch VARCHAR",
            "d DATE",
            "tm TIME",
            "ts TIMESTAMP",
            "tstz TIMESTAMP WITH TIME ZONE",
            "iv INTERVAL",
            "u VARCHAR",
            "j VARCHAR",
            "jb VARCHAR",
            "by BLOB",
            "m VARCHAR",
            "ia INTEGER[]",
            "ta VARCHAR[]",
        ]
    );
    let t = "raw.all_types";
    assert_eq!(p.scalar("select count(*) from raw.all_types"), 3);
    holds(
        &p,
        t,
        1,
        "i2 = -32768 and i4 = -2147483648 and i8 = -9223372036854775808",
    );
    holds(
        &p,
        t,
        2,
        "i2 = 32767 and i4 = 2147483647 and i8 = 9223372036854775807",
    );
    holds(
        &p,
        t,
        1,
        "n38::varchar = '99999999999999999999999999999999999999' and n10 = -1234567.891",
    );
    holds(
        &p,
        t,
        2,
        "n38::varchar = '-99999999999999999999999999999999999999' and n10 = 0.001",
    );
    holds(&p, t, 1, "f4 = 1.5 and isnan(f8)");
    holds(&p, t, 2, "f4 = '-inf'::float and f8 = 'inf'::double");
    holds(
        &p,
        t,
        1,
        "b and t = 'héllo ☃ 日本' and vc = '' and ch = 'ab '",
    );
    holds(&p, t, 2, "not b and t is null and vc is null");
    holds(
        &p,
        t,
        1,
        "d = '2024-02-29' and tm = '23:59:59.999999' and ts = '2024-01-01 12:34:56.789012'",
    );
    holds(
        &p,
        t,
        1,
        "epoch(tstz) = epoch('2024-06-01 10:00:00+00'::timestamptz)",
    );
    holds(
        &p,
        t,
        2,
        "d = '0001-01-01' and epoch(tstz) = epoch('2000-01-01 07:59:59+00'::timestamptz)",
    );
    holds(
        &p,
        t,
        1,
        "iv = interval '1 year 2 months 3 days 4 hours 5 minutes 6 seconds'",
    );
    holds(&p, t, 2, "iv = interval '-3 days'");
    holds(
        &p,
        t,
        1,
        "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' and j = '{\"a\": 1}' and jb = '{\"b\": [1, 2]}'",
    );
    holds(
        &p,
        t,
        1,
        "\"by\" = '\\xDE\\xAD\\xBE\\xEF'::blob and m = 'happy'",
    );
    holds(&p, t, 2, "\"by\" = ''::blob and m = 'sad' and len(ia) = 0");
    holds(&p, t, 1, "ia = [1, NULL, 3] and ta = ['x', 'y']");
    let nulls = ([
        "i2", "i8", "n38", "f8", "b", "t", "d", "tm", "ts", "tstz", "iv", "u", "jb", "by", "m",
        "ia", "ta",
    ])
    .map(|c| format!("\"{c}\" is null"))
    .join(" and ");
    holds(&p, t, 3, &nulls);
}

#[test]
fn postgres_incremental_loads_new_and_updated_rows_once() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, amount int, updated_at timestamptz NOT NULL);
         INSERT INTO orders SELECT g, g * 10, '2024-01-01'::timestamptz + g * interval '1 second'
         FROM generate_series(1, 1000) g;",
    );
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"orders\"\nincremental = { cursor = \"updated_at\" }",
        "table = \"raw.orders\"\nwrite = \"merge\"\nprimary_key = [\"id\"]",
    );
    let out = p.ok(&["run"]);
    assert!(out.contains("1000 rows"), "{out}");

    db.execute(
        "INSERT INTO orders SELECT g, g * 10, '2024-02-01'::timestamptz + g * interval '1 second'
         FROM generate_series(1001, 1100) g;
         UPDATE orders SET amount = -5, updated_at = '2024-03-01' WHERE id = 5;",
    );
    let out = p.ok(&["run"]);
    assert!(out.contains("101 rows"), "only new and updated rows: {out}");
    assert_eq!(p.scalar("select count(*) from raw.orders"), 1100);
    assert_eq!(p.scalar("select amount from raw.orders where id = 5"), -5);

    let out = p.ok(&["run"]);
    assert!(out.contains(" 0 rows"), "nothing new: {out}");
    let status = p.ok(&["status"]);
    assert!(status.contains("cursor: updated_at"), "{status}");

    p.ok(&["run", "--full-refresh"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 1100);
}

#[test]
fn postgres_lag_rereads_a_window_and_merge_dedupes_it() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, seq bigint NOT NULL); INSERT INTO ev SELECT g, g FROM generate_series(1, 100) g;");
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"ev\"\nincremental = { cursor = \"seq\", lag = 10, initial = 50 }",
        "table = \"ev\"\nwrite = \"merge\"\nprimary_key = [\"id\"]",
    );
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from ev"),
        51,
        "initial = 50 starts at 50"
    );
    // A row committed late, with a cursor value below the saved mark.
    db.execute("INSERT INTO ev VALUES (101, 95);");
    let out = p.ok(&["run"]);
    assert!(out.contains("12 rows"), "re-reads seq >= 90: {out}");
    assert_eq!(p.scalar("select count(*) from ev"), 52);
}

#[test]
fn postgres_parallel_ranges_read_every_row_once() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute("CREATE TABLE big (id bigint PRIMARY KEY, v text); INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 50000) g; INSERT INTO big VALUES (-7, 'negative');");
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"big\"\nparallel = 4\nbatch_size = 3000",
        "table = \"big\"",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from big"), 50_001);
    assert_eq!(p.scalar("select count(distinct id) from big"), 50_001);
    assert_eq!(p.scalar("select sum(id) from big"), 50_000 * 50_001 / 2 - 7);
}

#[test]
fn postgres_queries_and_unsupported_types() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute("CREATE TABLE hosts (id int, ip inet); INSERT INTO hosts VALUES (1, '10.0.0.1');");
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"hosts\"",
        "table = \"hosts\"",
    );
    let err = p.fails(&["run"]);
    assert!(
        err.contains("column \"ip\" has type inet") && err.contains("unsupported = \"text\""),
        "{err}"
    );

    p.write(
        "pipelines/load.toml",
        "[source]\nkind = \"postgres\"\nconnection = \"db\"\ntable = \"hosts\"\nunsupported = \"text\"\n[destination]\ntable = \"hosts\"\n",
    );
    p.ok(&["run"]);
    holds(&p, "hosts", 1, "ip = '10.0.0.1/32'");

    p.write(
        "pipelines/q.toml",
        "[source]\nkind = \"postgres\"\nconnection = \"db\"\nquery = \"select id * 2 as id, host(ip) as h from hosts\"\n[destination]\ntable = \"q\"\n",
    );
    p.ok(&["run", "q"]);
    holds(&p, "q", 2, "h = '10.0.0.1'");
}

#[test]
fn postgres_connection_errors_say_what_failed_without_the_password() {
    if !common::service("PostgreSQL", "127.0.0.1:5432") {
        return;
    }
    let p = project_with(
        "${PG_TEST_URL}",
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"t\"",
        "table = \"t\"",
    );
    p.write(
        ".env",
        "PG_TEST_URL=postgres://postgres:sekret-pw@127.0.0.1:5432/flowline_no_such_db\n",
    );
    let err = p.fails(&["run"]);
    assert!(err.contains("database does not exist"), "{err}");
    assert!(!err.contains("sekret-pw"), "{err}");
    p.write(".env", "PG_TEST_URL=postgres://postgres@127.0.0.1:1/x\n");
    let err = p.fails(&["run"]);
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn mariadb_types_map_faithfully_with_nulls_and_edge_values() {
    let Some(db) = MyDatabase::create() else {
        return;
    };
    db.execute(
        "CREATE TABLE all_types (
           id int PRIMARY KEY, ti tinyint, flag boolean, si smallint, mi mediumint, i int, iu int unsigned,
           bi bigint, bu bigint unsigned, d38 decimal(38,0), d10 decimal(10,3), f float, db double,
           c char(3), vc varchar(20), tx text, bl blob, dt date, dtm datetime(6), ts timestamp(6) NULL,
           tm time(6), js json, en enum('a','b'), yr year);
         INSERT INTO all_types VALUES
          (1, -128, true, -32768, -8388608, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
           99999999999999999999999999999999999999, -1234567.891, 1.5, 2.25, 'ab', '', 'héllo ☃', x'DEADBEEF',
           '2024-02-29', '2024-01-01 12:34:56.789012', '2024-06-01 10:00:00', '23:59:59.5', '{\"a\": 1}', 'b', 2024),
          (2, 127, false, 32767, 8388607, 2147483647, 0, 9223372036854775807, 0,
           -99999999999999999999999999999999999999, 0.001, -1.5, -2.25, NULL, NULL, NULL, x'', '1000-01-01',
           '1970-01-01 00:00:00', NULL, '00:00:00', NULL, 'a', 1901),
          (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let p = project_with(
        &db.url(),
        "kind = \"mysql\"\nconnection = \"db\"\ntable = \"all_types\"",
        "table = \"raw.my_types\"",
    );
    p.ok(&["run"]);
    let types = column_types(&p, "my_types");
    assert_eq!(
        types,
        [
            "id INTEGER",
            "ti SMALLINT",
            "flag BOOLEAN",
            "si INTEGER",
            "mi INTEGER",
            "i INTEGER",
            "iu BIGINT",
            "bi BIGINT",
            "bu UBIGINT",
            "d38 DECIMAL(38,0)",
            "d10 DECIMAL(10,3)",
            "f FLOAT",
            "db DOUBLE",
            "c VARCHAR",
            "vc VARCHAR",
            "tx VARCHAR",
            "bl BLOB",
            "dt DATE",
            "dtm TIMESTAMP",
            "ts TIMESTAMP WITH TIME ZONE",
            "tm TIME",
            "js VARCHAR",
            "en VARCHAR",
            "yr SMALLINT",
        ]
    );
    let t = "raw.my_types";
    holds(
        &p,
        t,
        1,
        "ti = -128 and flag and si = -32768 and mi = -8388608 and i = -2147483648 and iu = 4294967295",
    );
    holds(
        &p,
        t,
        1,
        "bi = -9223372036854775808 and bu = 18446744073709551615",
    );
    holds(
        &p,
        t,
        1,
        "d38::varchar = '99999999999999999999999999999999999999' and d10 = -1234567.891",
    );
    holds(
        &p,
        t,
        1,
        "f = 1.5 and db = 2.25 and c = 'ab' and vc = '' and tx = 'héllo ☃' and bl = '\\xDE\\xAD\\xBE\\xEF'::blob",
    );
    holds(
        &p,
        t,
        1,
        "dt = '2024-02-29' and dtm = '2024-01-01 12:34:56.789012' and tm = '23:59:59.5'",
    );
    holds(
        &p,
        t,
        1,
        "epoch(ts) = epoch('2024-06-01 10:00:00+00'::timestamptz) and js = '{\"a\": 1}' and en = 'b' and yr = 2024",
    );
    holds(
        &p,
        t,
        2,
        "ti = 127 and not flag and bu = 0 and d38::varchar = '-99999999999999999999999999999999999999'",
    );
    holds(
        &p,
        t,
        2,
        "c is null and vc is null and bl = ''::blob and dt = '1000-01-01' and ts is null",
    );
    holds(
        &p,
        t,
        3,
        "ti is null and flag is null and bu is null and d38 is null and dtm is null and tm is null and en is null",
    );
}

#[test]
fn mariadb_incremental_loads_new_and_updated_rows_once() {
    let Some(db) = MyDatabase::create() else {
        return;
    };
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, amount int, updated_at datetime(6) NOT NULL);
         INSERT INTO orders SELECT seq, seq * 10, '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_500;",
    );
    let p = project_with(
        &db.url(),
        "kind = \"mysql\"\nconnection = \"db\"\ntable = \"orders\"\nincremental = { cursor = \"updated_at\" }",
        "table = \"orders\"\nwrite = \"merge\"\nprimary_key = [\"id\"]",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from orders"), 500);
    db.execute("INSERT INTO orders VALUES (501, 1, '2024-05-01'); UPDATE orders SET amount = -1, updated_at = '2024-05-02' WHERE id = 7;");
    let out = p.ok(&["run"]);
    assert!(out.contains("2 rows"), "{out}");
    assert_eq!(p.scalar("select count(*) from orders"), 501);
    assert_eq!(p.scalar("select amount from orders where id = 7"), -1);
    let out = p.ok(&["run"]);
    assert!(out.contains(" 0 rows"), "{out}");
}

#[test]
fn sqlite_tables_load_with_declared_types_and_bad_values_become_dead_letters() {
    let p = TestProject::new();
    let path = p.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(10,2), qty INT, ok BOOLEAN,
                             added DATE, seen DATETIME, raw BLOB, score REAL);
         INSERT INTO items VALUES (1, 'a', '12.50', 3, 1, '2024-01-02', '2024-01-02 03:04:05', x'00ff', 0.5);
         INSERT INTO items VALUES (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
         INSERT INTO items VALUES (3, 'bad', '1', 'three', 0, '2024-01-03', '2024-01-03 00:00:00', NULL, 1);",
    )
    .expect("create");
    drop(conn);
    p.write("pipelines/items.toml", "[source]\nkind = \"sqlite\"\nurl = \"sqlite://app.db\"\ntable = \"items\"\nincremental = { cursor = \"id\" }\n[destination]\ntable = \"items\"\n");
    p.ok(&["run"]);
    assert_eq!(
        column_types(&p, "items"),
        [
            "id BIGINT",
            "name VARCHAR",
            "price DECIMAL(10,2)",
            "qty BIGINT",
            "ok BOOLEAN",
            "added DATE",
            "seen TIMESTAMP",
            "raw BLOB",
            "score DOUBLE"
        ]
    );
    holds(
        &p,
        "items",
        1,
        "price = 12.5 and qty = 3 and ok and added = '2024-01-02' and seen = '2024-01-02 03:04:05' and raw = '\\x00\\xFF'::blob",
    );
    holds(
        &p,
        "items",
        2,
        "name is null and price is null and ok is null",
    );
    assert_eq!(p.scalar("select count(*) from items"), 2);
    let letters = p.query("select reason from _flowline_dead_letter");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("column \"qty\""),
        "{letters:?}"
    );

    let conn = rusqlite::Connection::open(&path).expect("sqlite");
    conn.execute_batch("INSERT INTO items (id, name) VALUES (4, 'new');")
        .expect("insert");
    drop(conn);
    let out = p.ok(&["run"]);
    assert!(out.contains("1 row "), "{out}");
    assert_eq!(p.scalar("select count(*) from items"), 3);
}

#[test]
fn connections_test_and_discover_write_a_pipeline_that_runs() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute(
        "CREATE SCHEMA shop; CREATE TABLE shop.customers (id int PRIMARY KEY, name text, updated_at timestamptz);
         INSERT INTO shop.customers VALUES (1, 'a', now()), (2, 'b', now()); ANALYZE shop.customers;",
    );
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"shop.customers\"",
        "table = \"x\"",
    );
    std::fs::remove_file(p.path().join("pipelines/load.toml")).expect("remove");
    let out = p.ok(&["connections", "test", "db"]);
    assert!(out.contains("ok") && out.contains("PostgreSQL"), "{out}");
    let out = p.ok(&["discover", "db"]);
    assert!(
        out.contains("customers") && out.contains("updated_at") && out.contains("~2"),
        "{out}"
    );
    p.ok(&["discover", "db", "--write-pipeline", "shop.customers"]);
    let written = std::fs::read_to_string(p.path().join("pipelines/customers.toml"))
        .expect("pipeline written");
    assert!(
        written.contains("cursor = \"updated_at\"") && written.contains("primary_key = [\"id\"]"),
        "{written}"
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.customers"), 2);

    p.write("flowline.toml", "[project]\nname = \"db\"\n[connections.db]\nurl = \"postgres://postgres@127.0.0.1:5432/flowline_missing_db\"\n");
    let err = p.fails(&["connections", "test", "db"]);
    assert!(err.contains("database does not exist"), "{err}");
}

#[test]
fn mariadb_connections_test_and_discover() {
    let Some(db) = MyDatabase::create() else {
        return;
    };
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v varchar(5)); INSERT INTO t VALUES (1, 'x');");
    let p = project_with(
        &db.url(),
        "kind = \"mysql\"\nconnection = \"db\"\ntable = \"t\"",
        "table = \"t\"",
    );
    let out = p.ok(&["connections", "test", "db"]);
    assert!(out.contains("MariaDB"), "{out}");
    let out = p.ok(&["discover", "db"]);
    assert!(out.contains("varchar(5)"), "{out}");
    p.write("flowline.toml", format!("[project]\nname = \"db\"\n[connections.db]\nurl = \"mysql://root:wrong-secret@127.0.0.1:3306/{}\"\n", db.name));
    let err = p.fails(&["connections", "test", "db"]);
    assert!(
        err.contains("authentication failed") || err.contains("Access denied"),
        "{err}"
    );
}

#[test]
fn interval_lags_work_on_mariadb_and_sqlite_and_a_changed_cursor_starts_over() {
    let Some(db) = MyDatabase::create() else {
        return;
    };
    db.execute(
        "CREATE TABLE ev (id int PRIMARY KEY, at datetime NOT NULL);
         INSERT INTO ev VALUES (1, '2024-01-01 10:00:00'), (2, '2024-01-01 11:00:00');",
    );
    let p = project_with(
        &db.url().replace("mysql://", "mariadb://"),
        "kind = \"mysql\"\nconnection = \"db\"\ntable = \"ev\"\nincremental = { cursor = \"at\", lag = \"90 minutes\" }",
        "table = \"ev\"\nwrite = \"merge\"\nprimary_key = [\"id\"]",
    );
    p.ok(&["run"]);
    let out = p.ok(&["run"]);
    assert!(
        out.contains("2 rows"),
        "re-reads the 90 minutes behind the mark: {out}"
    );
    assert_eq!(p.scalar("select count(*) from ev"), 2);

    p.write(
        "pipelines/load.toml",
        "[source]\nkind = \"mysql\"\nconnection = \"db\"\ntable = \"ev\"\nincremental = { cursor = \"id\" }\n[destination]\ntable = \"ev\"\nwrite = \"merge\"\nprimary_key = [\"id\"]\n",
    );
    let out = p.ok(&["run"]);
    assert!(
        out.contains("2 rows"),
        "a new cursor column loads from the start: {out}"
    );

    let lite = TestProject::new();
    let conn = rusqlite::Connection::open(lite.path().join("a.db")).expect("sqlite");
    conn.execute_batch("CREATE TABLE ev (id INTEGER PRIMARY KEY, at TEXT); INSERT INTO ev VALUES (1, '2024-01-01 10:00:00'), (2, '2024-01-01 11:00:00');")
        .expect("create");
    drop(conn);
    lite.write(
        "pipelines/ev.toml",
        "[source]\nkind = \"sqlite\"\nurl = \"sqlite://a.db\"\ntable = \"ev\"\nincremental = { cursor = \"at\", lag = \"30 minutes\" }\n[destination]\ntable = \"ev\"\nwrite = \"merge\"\nprimary_key = [\"id\"]\n",
    );
    lite.ok(&["run"]);
    let out = lite.ok(&["run"]);
    assert!(out.contains("1 row "), "{out}");
}

/// The local server's TLS certificate file, when it has TLS on; under CI a
/// server without TLS fails the test.
fn postgres_tls_certificate(p: &TestProject) -> Option<String> {
    p.write(
        "pipelines/settings.toml",
        "[source]\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable\"\n\
         query = \"select current_setting('ssl') as ssl, current_setting('ssl_cert_file') as cert\"\n\
         [destination]\ntable = \"server_settings\"\nwrite = \"replace\"\n",
    );
    p.ok(&["run", "settings"]);
    let settings = p.query("select ssl, cert from server_settings");
    if settings[0]["ssl"] != "on" {
        common::skip("the local PostgreSQL has ssl = off: TLS cannot be tested");
        return None;
    }
    settings[0]["cert"].as_str().map(str::to_string)
}

#[test]
fn postgres_sslmode_require_encrypts_the_connection() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = TestProject::new();
    let query = "select (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as encrypted";
    for mode in ["disable", "require"] {
        p.write(
            &format!("pipelines/{mode}.toml"),
            format!(
                "[source]\nkind = \"postgres\"\nurl = \"{}?sslmode={mode}\"\nquery = \"{query}\"\n[destination]\ntable = \"tls_{mode}\"\n",
                db.url()
            ),
        );
    }
    p.ok(&["run", "disable"]);
    assert_eq!(
        p.scalar("select count(*) from tls_disable where not encrypted"),
        1
    );
    if postgres_tls_certificate(&p).is_none() {
        return;
    }
    p.ok(&["run", "require"]);
    assert_eq!(
        p.scalar("select count(*) from tls_require where encrypted"),
        1
    );
}

#[test]
fn postgres_verify_modes_check_the_server_certificate() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = TestProject::new();
    let Some(cert) = postgres_tls_certificate(&p) else {
        return;
    };
    // The server's certificate is self-signed: trusted as its own root, it
    // names the hosts in its subjectAltName (on Debian's snakeoil, the
    // machine's name or localhost), not 127.0.0.1.
    let root = p.write(
        "ca.pem",
        std::fs::read(&cert).expect("server certificate readable"),
    );
    let root = root.display();
    let query = "select (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as encrypted";
    let pipeline = |name: &str, url: String| {
        p.write(
            &format!("pipelines/{name}.toml"),
            format!(
                "[source]\nkind = \"postgres\"\nurl = \"{url}\"\nquery = \"{query}\"\n\
                 [destination]\ntable = \"{name}\"\n"
            ),
        );
    };
    let by_ip = db.url();
    pipeline(
        "ca",
        format!("{by_ip}?sslmode=verify-ca&sslrootcert={root}"),
    );
    pipeline(
        "full_ip",
        format!("{by_ip}?sslmode=verify-full&sslrootcert={root}"),
    );
    pipeline("public_roots", format!("{by_ip}?sslmode=verify-full"));

    // verify-ca: the chain is checked, the name is not.
    p.ok(&["run", "ca"]);
    assert_eq!(p.scalar("select count(*) from ca where encrypted"), 1);
    // verify-full: 127.0.0.1 is not a name the certificate carries.
    let err = p.fails(&["run", "full_ip"]);
    assert!(err.contains("does not name this host"), "{err}");
    // Without the server's root, the certificate is not trusted.
    let err = p.fails(&["run", "public_roots"]);
    assert!(err.contains("not signed by a trusted root"), "{err}");
    // A missing root file is named.
    pipeline(
        "no_file",
        format!("{by_ip}?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem"),
    );
    let err = p.fails(&["run", "no_file"]);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");

    // verify-full by a name the certificate carries, when it resolves here.
    let names = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in", &cert])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let local = names
        .split([',', '\n'])
        .filter_map(|part| part.trim().strip_prefix("DNS:"))
        .find(|name| {
            use std::net::ToSocketAddrs;
            (*name, 5432)
                .to_socket_addrs()
                .map(|mut addrs| addrs.any(|a| a.ip().is_loopback()))
                .unwrap_or(false)
        });
    match local {
        Some(name) => {
            let by_name = by_ip.replace("127.0.0.1", name);
            pipeline(
                "full_name",
                format!("{by_name}?sslmode=verify-full&sslrootcert={root}"),
            );
            p.ok(&["run", "full_name"]);
            assert_eq!(
                p.scalar("select count(*) from full_name where encrypted"),
                1
            );
        }
        None => eprintln!(
            "note: no name in {cert} resolves to this machine; verify-full by name not exercised"
        ),
    }
}

#[test]
fn postgres_values_flowline_cannot_represent_become_dead_letters() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute("CREATE TABLE d (id int, day date); INSERT INTO d VALUES (1, '2024-01-01'), (2, 'infinity'), (3, NULL);");
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"d\"",
        "table = \"d\"",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from d"), 2);
    let letters = p.query("select origin, reason from _flowline_dead_letter");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("column \"day\""),
        "{letters:?}"
    );
}

#[test]
fn a_large_merge_in_small_batches_runs_within_the_load_memory_limit() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    db.execute(
        "CREATE TABLE wide AS SELECT g AS id, md5(g::text) AS a, md5((g + 1)::text) AS b, \
         md5((g + 2)::text) AS c, g * 1.5 AS f FROM generate_series(1, 600000) g;",
    );
    let p = project_with(
        &db.url(),
        "kind = \"postgres\"\nconnection = \"db\"\ntable = \"wide\"\nbatch_size = 2000",
        "table = \"raw.wide\"\nwrite = \"merge\"\nprimary_key = [\"id\"]",
    );
    // A quarter of the default: the table's rows and their updates do not fit.
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"db\"\n\n[warehouse]\nload_memory_limit = \"32MB\"\n\n\
             [connections.db]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    for _ in 0..2 {
        p.ok(&["run"]);
        assert_eq!(p.scalar("select count(*) from raw.wide"), 600_000);
        assert_eq!(p.scalar("select count(distinct id) from raw.wide"), 600_000);
    }
    db.execute("UPDATE wide SET a = 'changed' WHERE id % 1000 = 0;");
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.wide where a = 'changed'"),
        600
    );
}
