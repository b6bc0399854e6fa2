//! End to end: file pipelines run by the built binary into DuckDB.

mod common;

use common::{TestProject, orders_csv};

const CSV_APPEND: &str = r#"
[source]
kind = "file"
path = "data/*.csv"

[destination]
table = "raw.orders"
"#;

#[test]
fn csv_files_load_and_reruns_load_only_new_files() {
    let p = TestProject::new();
    p.write("pipelines/orders.toml", CSV_APPEND);
    p.write("data/a.csv", orders_csv(1, 100));
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 100);

    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        100,
        "unchanged files are skipped"
    );

    p.write("data/b.csv", orders_csv(101, 50));
    let out = p.ok(&["run", "orders"]);
    assert!(out.contains("50 rows"), "{out}");
    assert_eq!(p.scalar("select count(*) from raw.orders"), 150);
    assert_eq!(p.scalar("select count(distinct id) from raw.orders"), 150);
}

#[test]
fn full_refresh_rebuilds_the_table_from_every_file() {
    let p = TestProject::new();
    p.write("pipelines/orders.toml", CSV_APPEND);
    p.write("data/a.csv", orders_csv(1, 10));
    p.ok(&["run"]);
    p.ok(&["run", "--full-refresh"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 10);
    p.write("data/b.csv", orders_csv(11, 5));
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        15,
        "state survives a full refresh"
    );
}

#[test]
fn inferred_types_are_kept_in_the_warehouse() {
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        "[source]\nkind = \"file\"\npath = \"data/t.csv\"\n[destination]\ntable = \"t\"\n",
    );
    p.write(
        "data/t.csv",
        "i,f,b,d,ts,s\n1,1.5,true,2024-01-02,2024-01-02 03:04:05,x\n-2,,false,2024-12-31,2024-12-31T23:59:59,\n",
    );
    p.ok(&["run"]);
    let types = p.query("select column_name, data_type from information_schema.columns where table_name = 't' order by ordinal_position");
    let types: Vec<String> = types
        .iter()
        .map(|r| r["data_type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        types,
        [
            "BIGINT",
            "DOUBLE",
            "BOOLEAN",
            "DATE",
            "TIMESTAMP",
            "VARCHAR"
        ]
    );
    assert_eq!(
        p.scalar("select count(*) from t where f is null and s is null"),
        1
    );
}

#[test]
fn csv_options_delimiter_quote_nulls_and_column_overrides() {
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        r#"
[source]
kind = "file"
path = "data/t.txt"
format = "csv"
delimiter = ";"
quote = "'"
null_values = ["NA"]
columns = { code = "text", price = "decimal(10,2)" }

[destination]
table = "t"
"#,
    );
    p.write("data/t.txt", "code;name;price\n007;'a;b';1.25\n010;NA;NA\n");
    p.ok(&["run"]);
    let rows = p.query("select code, name, cast(price as varchar) as price from t order by code");
    assert_eq!(rows[0]["code"], "007");
    assert_eq!(rows[0]["name"], "a;b");
    assert_eq!(rows[0]["price"], "1.25");
    assert!(rows[1]["name"].is_null());
}

#[test]
fn ndjson_json_documents_and_parquet_load() {
    let p = TestProject::new();
    p.write("pipelines/events.toml", "[source]\nkind = \"file\"\npath = \"data/events.ndjson\"\n[destination]\ntable = \"raw.events\"\n");
    p.write(
        "data/events.ndjson",
        "{\"id\": 1, \"user\": {\"name\": \"ann\"}, \"tags\": [\"a\"]}\n{\"id\": 2, \"user\": {\"name\": \"bob\"}, \"extra\": 7}\n",
    );
    p.write(
        "pipelines/items.toml",
        "[source]\nkind = \"file\"\npath = \"data/items.json\"\nrecords = \"data.items\"\n[destination]\ntable = \"raw.items\"\n",
    );
    p.write(
        "data/items.json",
        r#"{"data": {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}}"#,
    );
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from raw.events where \"user\".name in ('ann', 'bob')"),
        2
    );
    assert_eq!(p.scalar("select sum(extra) from raw.events"), 7);
    assert_eq!(p.scalar("select sum(qty) from raw.items"), 3);

    // Parquet written by the warehouse itself, then loaded by a pipeline.
    let parquet = p.path().join("data/items.parquet");
    p.ok(&[
        "sql",
        &format!(
            "copy (select * from raw.items) to '{}' (format parquet)",
            parquet.display()
        ),
    ]);
    p.write("pipelines/pq.toml", "[source]\nkind = \"file\"\npath = \"data/*.parquet\"\n[destination]\ntable = \"raw.items_pq\"\n");
    p.ok(&["run", "pq"]);
    assert_eq!(p.scalar("select sum(qty) from raw.items_pq"), 3);
}

#[test]
fn gzipped_csv_is_decompressed() {
    use std::io::Write;
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        CSV_APPEND.replace("*.csv", "*.csv.gz"),
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(orders_csv(1, 20).as_bytes()).expect("gzip");
    p.write("data/a.csv.gz", gz.finish().expect("gzip"));
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 20);
}

#[test]
fn merge_upserts_on_the_primary_key_and_last_row_wins() {
    let p = TestProject::new();
    p.write(
        "pipelines/c.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\ntable = \"c\"\nwrite = \"merge\"\nprimary_key = [\"id\"]\n",
    );
    p.write("data/1.csv", "id,name\n1,a\n2,b\n2,b2\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from c"), 2);
    p.write("data/2.csv", "id,name\n2,B\n3,c\n");
    p.ok(&["run"]);
    let rows = p.query("select id, name from c order by id");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["a", "B", "c"]);
    // Rows are updated in place: a column the batch lacks keeps its value.
    p.write("data/3.csv", "id,name,note\n3,c,kept\n");
    p.ok(&["run"]);
    p.write("data/4.csv", "id,name\n3,C\n");
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from c where id = 3 and name = 'C' and note = 'kept'"),
        1
    );
    assert_eq!(p.scalar("select count(*) from c"), 3);
}

#[test]
fn replace_swaps_the_whole_table() {
    let p = TestProject::new();
    p.write(
        "pipelines/r.toml",
        "[source]\nkind = \"file\"\npath = \"data/r.csv\"\n[destination]\ntable = \"r\"\nwrite = \"replace\"\n",
    );
    p.write("data/r.csv", "id\n1\n2\n3\n");
    p.ok(&["run"]);
    p.write("data/r.csv", "id,extra\n9,x\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from r"), 1);
    assert_eq!(p.scalar("select max(id) from r"), 9);
}

#[test]
fn new_columns_are_added_and_types_widen_or_under_strict_reject_rows() {
    let p = TestProject::new();
    let pipeline =
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\ntable = \"e\"\n";
    p.write("pipelines/e.toml", pipeline);
    p.write("data/1.csv", "id,n\n1,10\n");
    p.ok(&["run"]);
    p.write("data/2.csv", "id,n,note\n2,20,hello\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from e where note = 'hello'"), 1);
    let type_of_n = || {
        p.query("select data_type from information_schema.columns where table_name = 'e' and column_name = 'n'")[0]
            ["data_type"]
            .clone()
    };

    // strict keeps the table's types: 4.0 is the integer 4, 2.5 is no integer.
    p.write(
        "pipelines/e.toml",
        format!("{pipeline}schema = \"strict\"\n"),
    );
    p.write("data/3.csv", "id,n\n3,2.5\n4,4.0\n");
    let out = p.ok(&["run"]);
    assert!(out.contains("1 row to _flowline_dead_letter"), "{out}");
    assert_eq!(type_of_n(), "BIGINT");
    assert_eq!(p.scalar("select n from e where id = 4"), 4);
    let letters = p.query("select reason, raw from _flowline_dead_letter");
    assert_eq!(letters.len(), 1);
    let reason = letters[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("column \"n\" is BIGINT in table main.e") && reason.contains("strict"),
        "{reason}"
    );
    assert!(letters[0]["raw"].as_str().unwrap_or("").contains("2.5"));

    // The default widens the column: no value changes.
    p.write("pipelines/e.toml", pipeline);
    p.write("data/5.csv", "id,n\n5,7.25\n");
    p.ok(&["run"]);
    assert_eq!(type_of_n(), "DOUBLE");
    let values = p.query("select n::varchar as n from e order by id");
    let values: Vec<&str> = values
        .iter()
        .map(|r| r["n"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(values, ["10.0", "20.0", "4.0", "7.25"]);
}

#[test]
fn bad_rows_go_to_the_dead_letter_table_and_max_bad_rows_fails_the_run() {
    let p = TestProject::new();
    let pipeline = "[source]\nkind = \"file\"\npath = \"data/*.csv\"\ncolumns = { id = \"bigint\" }\n[destination]\ntable = \"d\"\n";
    p.write("pipelines/d.toml", pipeline);
    p.write("data/1.csv", "id,name\n1,a\nx,b\n3,c,extra\n4,d\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from d"), 2);
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter order by origin");
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["origin"], "data/1.csv:3");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("cannot convert \"x\" to BIGINT")
    );
    assert_eq!(letters[0]["raw"], "x,b");
    assert!(
        letters[1]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("expected 2 fields, found 3")
    );

    p.write("pipelines/d.toml", format!("max_bad_rows = 1\n{pipeline}"));
    p.write("data/2.csv", "id,name\ny,b\nz,c\n");
    let err = p.fails(&["run"]);
    assert!(err.contains("more than max_bad_rows = 1"), "{err}");
    assert_eq!(
        p.scalar("select count(*) from d"),
        2,
        "the failed run loaded nothing"
    );
    assert_eq!(
        p.scalar("select count(*) from _flowline_dead_letter where origin like 'data/2.csv%'"),
        2,
        "the rows that failed the run are kept to explain it"
    );
}

#[test]
fn malformed_json_lines_are_dead_letters() {
    let p = TestProject::new();
    p.write(
        "pipelines/j.toml",
        "[source]\nkind = \"file\"\npath = \"data/j.ndjson\"\n[destination]\ntable = \"j\"\n",
    );
    p.write(
        "data/j.ndjson",
        "{\"id\": 1}\n{not json\n[1,2]\n{\"id\": 2}\n",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from j"), 2);
    assert_eq!(
        p.scalar("select count(*) from _flowline_dead_letter where pipeline = 'j'"),
        2
    );
}

#[test]
fn transforms_run_in_order_on_every_batch() {
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        r#"
[source]
kind = "file"
path = "data/*.csv"
batch_size = 7

[[transform]]
sql = "select id, upper(customer) as customer, amount_cents / 100.0 as amount, status from input where status <> 'refunded'"

[[transform]]
rename = { customer = "customer_code" }

[[transform]]
cast = { amount = "decimal(12,2)" }

[[transform]]
filter = "amount > 1"

[[transform]]
mask = ["customer_code"]
salt = "pepper"

[[transform]]
drop = ["status"]

[destination]
table = "t"
"#,
    );
    p.write("data/a.csv", orders_csv(1, 100));
    p.ok(&["run"]);
    let expected = (1..=100)
        .filter(|id| id % 5 != 0 && (id * 3 % 10_000) as f64 / 100.0 > 1.0)
        .count() as i64;
    assert_eq!(p.scalar("select count(*) from t"), expected);
    let cols = p.query("select column_name, data_type from information_schema.columns where table_name = 't' order by ordinal_position");
    let cols: Vec<String> = cols
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["column_name"].as_str().unwrap_or(""),
                r["data_type"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        cols,
        ["id BIGINT", "customer_code VARCHAR", "amount DECIMAL(12,2)"]
    );
    assert_eq!(p.scalar("select min(length(customer_code)) from t"), 64);
}

#[test]
fn secrets_from_env_are_interpolated_and_never_printed() {
    let p = TestProject::new();
    p.write(
        ".env",
        "FLOWLINE_TEST_TABLE=from_dotenv\nFLOWLINE_TEST_SALT=s3cr3t-salt-value\n",
    );
    p.write(
        "pipelines/s.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[[transform]]\nsql = \"select * from input where '${FLOWLINE_TEST_SALT}' = 'x' or nosuchcolumn\"\n[destination]\ntable = \"${FLOWLINE_TEST_TABLE}\"\n",
    );
    p.write("data/a.csv", orders_csv(1, 3));
    let out = p.fails(&["run"]);
    assert!(!out.contains("s3cr3t-salt-value"), "secret leaked: {out}");
    assert!(out.contains("***"), "{out}");
    let json = p.flowline(&["run", "--json"]);
    assert!(!String::from_utf8_lossy(&json.stdout).contains("s3cr3t-salt-value"));
}

#[test]
fn run_report_json_status_and_exit_codes() {
    let p = TestProject::new();
    p.write("pipelines/good.toml", CSV_APPEND);
    p.write("pipelines/bad.toml", "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[[transform]]\nsql = \"select nope from input\"\n[destination]\ntable = \"b\"\n");
    p.write("data/a.csv", orders_csv(1, 5));
    let out = p.flowline(&["run", "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["ok"], false);
    let runs = report["runs"].as_array().expect("runs");
    let good = runs
        .iter()
        .find(|r| r["pipeline"] == "good")
        .expect("good run");
    assert_eq!(good["status"], "succeeded");
    assert_eq!(good["rows"], 5);
    let bad = runs
        .iter()
        .find(|r| r["pipeline"] == "bad")
        .expect("bad run");
    assert_eq!(bad["status"], "failed");
    assert!(bad["error"].as_str().unwrap_or("").contains("nope"));

    let status = p.ok(&["status"]);
    assert!(
        status.contains("good") && status.contains("succeeded") && status.contains("files: 1"),
        "{status}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&p.ok(&["status", "--json"])).expect("json");
    assert_eq!(status.as_array().map(Vec::len), Some(2));

    let csv = p.ok(&["sql", "--format", "csv", "select 1 as a, 'x' as b"]);
    assert_eq!(csv.trim(), "a,b\n1,x");
    let table = p.ok(&["sql", "select 42 as answer"]);
    assert!(
        table.contains("| answer |") && table.contains("| 42"),
        "{table}"
    );
    let err = p.fails(&["sql", "select * from no_such_table"]);
    assert!(err.contains("no_such_table"), "{err}");
}

#[test]
fn init_scaffolds_a_project_that_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let project = dir.path().join("my_project");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowline"))
        .arg("init")
        .arg(&project)
        .output()
        .expect("init");
    assert!(out.status.success());
    for file in [
        "flowline.toml",
        "pipelines/customers.toml",
        "data/customers.csv",
        ".gitignore",
    ] {
        assert!(project.join(file).exists(), "{file} missing");
    }
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_flowline"))
        .arg("run")
        .current_dir(&project)
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("5 rows -> raw.customers"));
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_flowline"))
        .arg("init")
        .arg(&project)
        .output()
        .expect("init");
    assert!(!again.status.success(), "init refuses a non-empty folder");
}

#[test]
fn validate_checks_without_running() {
    let p = TestProject::new();
    p.write("pipelines/orders.toml", CSV_APPEND);
    let out = p.ok(&["validate"]);
    assert!(out.contains("ok"), "{out}");
    assert!(
        !p.path().join(".flowline/warehouse.duckdb").exists(),
        "validate touches no warehouse"
    );
    p.write("pipelines/bad.toml", "[source]\nkind = \"file\"\npath = \"x.csv\"\ncolumns = { a = \"wat\" }\n[destination]\ntable = \"t\"\n");
    let err = p.fails(&["validate"]);
    assert!(err.contains("unknown type \"wat\""), "{err}");
}

#[test]
fn nested_json_objects_keep_their_struct_type_across_files() {
    let p = TestProject::new();
    p.write(
        "pipelines/ev.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.ndjson\"\n[destination]\ntable = \"raw.ev\"\n",
    );
    p.write("data/1.ndjson", "{\"id\": 1, \"user\": {\"id\": 7}}\n");
    p.ok(&["run"]);
    p.write("data/2.ndjson", "{\"id\": 2, \"user\": {\"id\": 8}}\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("select sum(\"user\".id) from raw.ev"), 15);
}

#[test]
fn full_refresh_of_a_merge_pipeline_keeps_one_row_per_key() {
    let p = TestProject::new();
    p.write(
        "pipelines/c.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\ntable = \"c\"\nwrite = \"merge\"\nprimary_key = [\"id\"]\n",
    );
    p.write("data/1.csv", "id,tier\n1,gold\n2,silver\n1,platinum\n");
    p.ok(&["run"]);
    p.ok(&["run", "--full-refresh"]);
    let rows = p.query("select id, tier from c order by id");
    let tiers: Vec<&str> = rows
        .iter()
        .map(|r| r["tier"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(tiers, ["platinum", "silver"]);
}

#[test]
fn a_renamed_destination_table_is_loaded_from_the_start() {
    let p = TestProject::new();
    p.write("pipelines/orders.toml", CSV_APPEND);
    p.write("data/a.csv", orders_csv(1, 10));
    p.ok(&["run"]);
    p.write(
        "pipelines/orders.toml",
        CSV_APPEND.replace("raw.orders", "raw.orders_v2"),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders_v2"), 10);
}

#[test]
fn validate_checks_transform_sql_and_warehouse_settings() {
    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\n[[transform]]\nsql = \"selec * frm input\"\n[destination]\ntable = \"t\"\n",
    );
    let err = p.fails(&["validate"]);
    assert!(
        err.contains("[[transform]] #1") && err.contains("syntax error"),
        "{err}"
    );

    p.write(
        "pipelines/x.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\n[destination]\ntable = \"t\"\n",
    );
    p.write(
        "flowline.toml",
        "[project]\nname = \"x\"\n[warehouse]\nmemory_limit = \"lots\"\n",
    );
    let err = p.fails(&["validate"]);
    assert!(err.contains("memory_limit"), "{err}");

    p.write("flowline.toml", "[project]\nname = \"x\"\nnmae = 1\n");
    let out = p.flowline(&["validate", "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(report["ok"], false);
    assert!(
        report["errors"][0]
            .as_str()
            .unwrap_or("")
            .contains("flowline.toml:3:1")
    );
}

#[test]
fn an_unterminated_quote_costs_one_line_and_counts_toward_max_bad_rows() {
    let p = TestProject::new();
    let pipeline =
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\ntable = \"q\"\n";
    p.write("pipelines/q.toml", pipeline);
    let mut csv = String::from("id,name,amount\n");
    for id in 1..=1000 {
        if id == 500 {
            csv.push_str("500,\"unterminated,5000\n");
        } else {
            csv.push_str(&format!("{id},n{id},{}\n", id * 10));
        }
    }
    p.write("data/1.csv", &csv);
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from q"), 999);
    assert_eq!(
        p.scalar("select count(*) from q where id = 501 and amount = 5010"),
        1
    );
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["origin"], "data/1.csv:501");
    assert_eq!(letters[0]["raw"], "500,\"unterminated,5000");
    let reason = letters[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("unterminated quote") && reason.contains("line 501"),
        "{reason}"
    );

    p.write("pipelines/q.toml", format!("max_bad_rows = 0\n{pipeline}"));
    p.write("data/2.csv", csv.replace("\n1,", "\n-1,"));
    let err = p.fails(&["run"]);
    assert!(err.contains("more than max_bad_rows = 0"), "{err}");
    assert_eq!(
        p.scalar("select count(*) from q"),
        999,
        "the failed run loaded nothing"
    );
}

/// A project with a pipeline reading `data/*.parquet` into `pq`, and the
/// Parquet files `a` (ids 1-3) and `c` (ids 7-9) written by the warehouse.
fn parquet_project(extra: &str) -> TestProject {
    let p = TestProject::new();
    for (name, first) in [("a", 1), ("c", 7)] {
        let path = p.path().join(format!("data/{name}.parquet"));
        std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
        p.ok(&[
            "sql",
            &format!(
                "copy (select range + {first} as id from range(3)) to '{}' (format parquet)",
                path.display()
            ),
        ]);
    }
    p.write(
        "pipelines/pq.toml",
        format!("[source]\nkind = \"file\"\npath = \"data/*.parquet\"\n{extra}[destination]\ntable = \"pq\"\n"),
    );
    p
}

#[test]
fn a_corrupt_parquet_file_is_a_dead_letter_and_fails_the_run_unless_max_bad_files_allows() {
    let p = parquet_project("");
    p.write("data/b.parquet", b"PAR1 not really parquet PAR1");
    let err = p.fails(&["run"]);
    assert!(
        err.contains("data/b.parquet") && err.contains("max_bad_files = 0"),
        "{err}"
    );
    assert_eq!(
        p.scalar("select count(*) from pq"),
        6,
        "the files before and after it load"
    );
    let letters = p.query("select origin, reason from _flowline_dead_letter");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["origin"], "data/b.parquet");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("arquet"),
        "{letters:?}"
    );

    // Not marked as loaded: the next run reads it again, and only it.
    let err = p.fails(&["run"]);
    assert!(err.contains("data/b.parquet"), "{err}");
    assert_eq!(p.scalar("select count(*) from pq"), 6);

    // Allowed: skipped, recorded, and not read again.
    let pipeline = std::fs::read_to_string(p.path().join("pipelines/pq.toml")).expect("read");
    p.write(
        "pipelines/pq.toml",
        pipeline.replace("[destination]", "max_bad_files = 1\n[destination]"),
    );
    p.ok(&["run"]);
    let before = p.scalar("select count(*) from _flowline_dead_letter");
    p.ok(&["run"]);
    assert_eq!(
        p.scalar("select count(*) from _flowline_dead_letter"),
        before,
        "a skipped file counts as loaded"
    );
    assert_eq!(p.scalar("select count(*) from pq"), 6);
}

#[test]
fn a_json_document_that_does_not_parse_and_a_csv_without_header_are_bad_files() {
    let p = TestProject::new();
    p.write(
        "pipelines/j.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.json\"\nmax_bad_files = 1\n[destination]\ntable = \"j\"\n",
    );
    p.write("data/1.json", r#"[{"id": 1}]"#);
    p.write("data/2.json", r#"[{"id": 2}"#);
    p.write("data/3.json", r#"[{"id": 3}]"#);
    p.write(
        "pipelines/c.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n[destination]\ntable = \"c\"\n",
    );
    p.write("data/1.csv", "\nid\n1\n");
    p.write("data/2.csv", "id\n2\n");
    let out = p.fails(&["run"]);
    assert!(
        out.contains("data/1.csv") && out.contains("max_bad_files = 0"),
        "{out}"
    );
    assert_eq!(p.scalar("select sum(id) from j"), 4);
    assert_eq!(p.scalar("select sum(id) from c"), 2);
    let origins: Vec<String> = p
        .query("select origin from _flowline_dead_letter order by origin")
        .iter()
        .map(|r| r["origin"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(origins, ["data/1.csv", "data/2.json"]);
}

#[test]
fn an_empty_csv_loads_nothing_and_later_runs_do_not_warn() {
    let p = TestProject::new();
    p.write("pipelines/orders.toml", CSV_APPEND);
    p.write("data/a.csv", "");
    p.write("data/b.csv", "id,customer,amount_cents,status\n");
    for _ in 0..2 {
        let out = p.flowline(&["run"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("does not exist"), "{stderr}");
    }
    p.write("data/c.csv", orders_csv(1, 5));
    p.ok(&["run"]);
    let out = p.flowline(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("does not exist"), "{stderr}");
    assert_eq!(p.scalar("select count(*) from raw.orders"), 5);
}
