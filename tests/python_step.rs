//! End to end: `[[transform]] python = "..."` steps run by the built binary,
//! from files into DuckDB, through one Python worker per run.

mod common;

use common::{TestProject, orders_csv, python_modules_installed};

/// A pipeline reading `data/orders.csv` in batches of `batch_size` rows
/// through the python step `script`, into `raw.orders`.
fn orders_pipeline(script: &str, batch_size: usize, extra: &str) -> String {
    format!(
        r#"
[source]
kind = "file"
path = "data/orders.csv"
batch_size = {batch_size}

[[transform]]
python = "{script}"
{extra}

[destination]
table = "raw.orders"
"#
    )
}

/// A project with 100 orders, read in batches of `batch_size`, through
/// `transforms/step.py` holding `code`.
fn orders_project(code: &str, batch_size: usize) -> TestProject {
    let p = TestProject::new();
    p.write("data/orders.csv", orders_csv(1, 100));
    p.write("transforms/step.py", code);
    p.write(
        "pipelines/orders.toml",
        orders_pipeline("transforms/step.py", batch_size, ""),
    );
    p
}

fn tables_named(p: &TestProject, table: &str) -> i64 {
    p.scalar(&format!(
        "select count(*) from information_schema.tables where table_name = '{table}'"
    ))
}

#[test]
fn a_pandas_function_filters_rows_and_adds_renames_and_drops_columns() {
    if !python_modules_installed(&["pandas", "pyarrow"]) {
        return;
    }
    let p = orders_project(
        r#"
import pandas as pd

def transform(df: pd.DataFrame) -> pd.DataFrame:
    df = df[df["status"] == "paid"].copy()
    df["amount"] = df["amount_cents"] / 100
    df = df.rename(columns={"customer": "customer_id"})
    return df.drop(columns=["status"])
"#,
        1000,
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 80);
    let columns: Vec<String> = p
        .query(
            "select column_name from information_schema.columns \
             where table_name = 'orders' order by ordinal_position",
        )
        .iter()
        .map(|r| r["column_name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(columns, ["id", "customer_id", "amount_cents", "amount"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders where abs(amount * 100 - amount_cents) > 1e-6"),
        0
    );
    assert_eq!(
        p.scalar("select count(*) from raw.orders where id % 5 = 0"),
        0,
        "refunded orders were filtered out"
    );
}

#[test]
fn a_pyarrow_function_gets_and_returns_tables() {
    if !python_modules_installed(&["pyarrow"]) {
        return;
    }
    let by_annotation = r#"
import pyarrow as pa
import pyarrow.compute as pc

def transform(table: pa.Table) -> pa.Table:
    table = table.filter(pc.greater(table["id"], 90))
    return table.append_column("doubled", pc.multiply(table["id"], 2))
"#;
    let by_key = r#"
import pyarrow.compute as pc

def transform(table):
    return table.filter(pc.less_equal(table["id"], 10)).select(["id"])
"#;
    let p = orders_project(by_annotation, 1000);
    p.write("transforms/by_key.py", by_key);
    p.write(
        "pipelines/first_ten.toml",
        orders_pipeline("transforms/by_key.py", 1000, "api = \"arrow\"")
            .replace("raw.orders", "raw.first_ten"),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 10);
    assert_eq!(
        p.scalar("select count(*) from raw.orders where doubled = 2 * id"),
        10
    );
    assert_eq!(p.scalar("select sum(id) from raw.first_ten"), 55);
    let columns = p.query("select * from raw.first_ten limit 1");
    assert_eq!(
        columns[0].as_object().map(|o| o.len()),
        Some(1),
        "{columns:?}"
    );
}

#[test]
fn an_identity_function_keeps_every_value_exactly() {
    if !python_modules_installed(&["pandas", "pyarrow"]) {
        return;
    }
    let p = TestProject::new();
    let parquet = p.path().join("data/values.parquet");
    std::fs::create_dir_all(p.path().join("data")).expect("data dir");
    let made = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import sys, datetime, decimal
import pyarrow as pa, pyarrow.parquet as pq
utc = datetime.timezone.utc
table = pa.table({
    "n": pa.array([9007199254740993, None, -1, None], pa.int64()),
    "price": pa.array([decimal.Decimal("12345678901.23"), None, decimal.Decimal("-0.01"),
                       decimal.Decimal("0.10")], pa.decimal128(13, 2)),
    "ts": pa.array([datetime.datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=utc), None,
                    datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
                    datetime.datetime(2262, 4, 12, 0, 0, 0, 1, tzinfo=utc)],
                   pa.timestamp("us", tz="UTC")),
    "name": pa.array(["Zoë", "日本語 🚀", None, ""], pa.string()),
})
pq.write_table(table, sys.argv[1])
"#,
        )
        .arg(&parquet)
        .output()
        .expect("python3");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    p.write(
        "transforms/identity.py",
        "def transform(df):\n    return df\n",
    );
    let pipeline = |table: &str, step: &str| {
        format!(
            "[source]\nkind = \"file\"\npath = \"data/values.parquet\"\n{step}\n\
             [destination]\ntable = \"{table}\"\n"
        )
    };
    p.write("pipelines/direct.toml", pipeline("raw.direct", ""));
    p.write(
        "pipelines/through_python.toml",
        pipeline(
            "raw.through_python",
            "[[transform]]\npython = \"transforms/identity.py\"\n",
        ),
    );
    p.ok(&["run"]);
    let types = |table: &str| {
        p.query(&format!(
            "select column_name, data_type from information_schema.columns \
             where table_name = '{table}' order by ordinal_position"
        ))
    };
    assert_eq!(types("through_python"), types("direct"));
    assert_eq!(
        types("direct")
            .iter()
            .map(|r| r["data_type"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>(),
        [
            "BIGINT",
            "DECIMAL(13,2)",
            "TIMESTAMP WITH TIME ZONE",
            "VARCHAR"
        ]
    );
    assert_eq!(p.scalar("select count(*) from raw.through_python"), 4);
    for (a, b) in [
        ("raw.direct", "raw.through_python"),
        ("raw.through_python", "raw.direct"),
    ] {
        assert_eq!(
            p.scalar(&format!(
                "select count(*) from (select n, price, ts, name from {a} \
                 except all select n, price, ts, name from {b})"
            )),
            0,
            "{a} has rows {b} lacks"
        );
    }
    let rows = p.query(
        "select n::varchar as n, price::varchar as price, \
         strftime(ts at time zone 'UTC', '%Y-%m-%d %H:%M:%S.%f') as ts, name \
         from raw.through_python order by n nulls last, name",
    );
    let first = &rows[0];
    assert_eq!(first["n"], "-1");
    assert_eq!(first["price"], "-0.01");
    assert_eq!(first["ts"], "1969-12-31 23:59:59.999999");
    assert!(first["name"].is_null(), "{first}");
    assert_eq!(rows[1]["n"], "9007199254740993");
    assert_eq!(rows[1]["price"], "12345678901.23");
    assert_eq!(rows[1]["name"], "Zoë");
    assert!(
        rows.iter()
            .any(|r| r["name"] == "日本語 🚀" && r["n"].is_null()),
        "{rows:?}"
    );
}

#[test]
fn batches_whose_rows_are_all_dropped_load_nothing() {
    if !python_modules_installed(&["pandas", "pyarrow"]) {
        return;
    }
    // Batches of 10 rows: those starting at 1, 21, 41... keep nothing.
    let p = orders_project(
        r#"
def transform(df):
    if df["id"].min() % 20 == 1:
        return df.iloc[0:0]
    return df
"#,
        10,
    );
    let out = p.ok(&["run"]);
    assert!(out.contains("50 rows"), "{out}");
    assert_eq!(p.scalar("select count(*) from raw.orders"), 50);
    assert_eq!(p.scalar("select min(id) from raw.orders"), 11);
}

#[test]
fn one_worker_serves_every_batch_and_prints_do_not_disturb_it() {
    if !python_modules_installed(&["pandas", "pyarrow"]) {
        return;
    }
    let p = orders_project(
        r#"
import os

calls = 0

def transform(df):
    global calls
    calls += 1
    print(f"batch {calls} of {len(df)} rows")
    df["call"] = calls
    df["pid"] = os.getpid()
    return df
"#,
        10,
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 100);
    assert_eq!(p.scalar("select count(distinct pid) from raw.orders"), 1);
    assert_eq!(p.scalar("select count(distinct call) from raw.orders"), 10);
    assert_eq!(p.scalar("select max(call) from raw.orders"), 10);
}

#[test]
fn an_exception_fails_the_run_with_its_traceback_and_loads_nothing() {
    if !python_modules_installed(&["pandas", "pyarrow"]) {
        return;
    }
    let p = orders_project(
        r#"
def check(row_id):
    raise ValueError(f"order {row_id} has no customer")

def transform(df):
    if df["id"].max() >= 50:
        check(50)
    return df
"#,
        10,
    );
    let text = p.fails(&["run"]);
    assert!(text.contains("Traceback (most recent call last)"), "{text}");
    assert!(
        text.contains("ValueError: order 50 has no customer"),
        "{text}"
    );
    assert!(text.contains("step.py\", line 3, in check"), "{text}");
    assert_eq!(tables_named(&p, "orders"), 0, "nothing is loaded");
}

#[test]
fn a_worker_that_dies_fails_the_run_with_its_stderr() {
    if !python_modules_installed(&["pandas", "pyarrow"]) {
        return;
    }
    let p = orders_project(
        r#"
import os, sys

def transform(df):
    print("about to give up", file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)
"#,
        10,
    );
    let text = p.fails(&["run"]);
    assert!(
        text.contains("the Python worker exited (exit status: 3)"),
        "{text}"
    );
    assert!(text.contains("about to give up"), "{text}");
}

#[test]
fn validate_names_a_missing_module_and_how_to_install_it() {
    if !python_modules_installed(&["pyarrow"]) {
        return;
    }
    let p = orders_project(
        "import flowline_no_such_module\n\ndef transform(df):\n    return df\n",
        10,
    );
    let text = p.fails(&["validate"]);
    assert!(
        text.contains(
            "python step transforms/step.py: the script imports the module \
             flowline_no_such_module, which is not installed"
        ),
        "{text}"
    );
    assert!(
        text.contains("-m pip install flowline_no_such_module"),
        "{text}"
    );
}

#[test]
fn validate_reports_a_script_without_transform_and_a_missing_script() {
    if !python_modules_installed(&["pyarrow"]) {
        return;
    }
    let p = orders_project("def clean(df):\n    return df\n", 10);
    let text = p.fails(&["validate"]);
    assert!(text.contains("defines no function transform"), "{text}");

    p.write(
        "pipelines/orders.toml",
        orders_pipeline("transforms/missing.py", 10, ""),
    );
    let text = p.fails(&["validate"]);
    assert!(
        text.contains("python = \"transforms/missing.py\": no such file"),
        "{text}"
    );
}

#[test]
fn validate_reports_a_missing_interpreter() {
    let p = orders_project("def transform(df):\n    return df\n", 10);
    p.write(
        "flowline.toml",
        "[project]\nname = \"test\"\npython = \"flowline-no-such-python\"\n",
    );
    let text = p.fails(&["validate"]);
    assert!(
        text.contains(
            "[project] python = \"flowline-no-such-python\" in flowline.toml: no such program on PATH"
        ),
        "{text}"
    );
}
