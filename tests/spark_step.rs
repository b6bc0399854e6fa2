//! End to end: `spark = { ... }` job steps run `spark-submit` from PySpark
//! (PyPI) on this machine's Java: a job exports a warehouse table to
//! Parquet, Spark aggregates it, a pipeline loads the result back.

mod common;

use std::process::Command;

use common::{TestProject, orders_csv, skip};
use serde_json::Value;

/// Whether `spark-submit` and Java are here; otherwise the test is skipped
/// (failed under CI) saying what to install.
fn spark_installed() -> bool {
    let works = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if works("spark-submit", "--version") && works("java", "-version") {
        return true;
    }
    skip(
        "the Spark step tests need spark-submit and Java 17: CI installs PySpark (see .ci/run), \
         or run python3 -m pip install pyspark",
    );
    false
}

/// The id of the latest run of `job`.
fn last_run(p: &TestProject, job: &str) -> String {
    let runs: Value =
        serde_json::from_str(&p.ok(&["jobs", "runs", job, "--json"])).expect("runs as JSON");
    runs["runs"][0]["run_id"]
        .as_str()
        .expect("a run")
        .to_string()
}

/// Sums amounts and counts orders per status, reading the Parquet file of
/// its first argument and writing Parquet to its second; the data interval
/// arrives after them.
const AGGREGATE_APP: &str = r#"
import argparse
from pyspark.sql import SparkSession, functions as F

parser = argparse.ArgumentParser()
parser.add_argument("input")
parser.add_argument("output")
parser.add_argument("--data-interval-start", required=True)
parser.add_argument("--data-interval-end", required=True)
args = parser.parse_args()

spark = SparkSession.builder.getOrCreate()
orders = spark.read.parquet(args.input)
(orders.groupBy("status")
    .agg(F.count("*").alias("orders"), F.sum("amount_cents").alias("amount_cents"))
    .withColumn("interval_start", F.lit(args.data_interval_start))
    .withColumn("interval_end", F.lit(args.data_interval_end))
    .coalesce(1)
    .write.mode("overwrite").parquet(args.output))
print("aggregated", orders.count(), "orders")
spark.stop()
"#;

#[test]
fn a_spark_step_aggregates_an_export_that_a_pipeline_loads_back() {
    if !spark_installed() {
        return;
    }
    let p = TestProject::new();
    p.write("data/orders.csv", orders_csv(1, 2_000));
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/orders.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.write(
        "pipelines/by_status.toml",
        "[source]\nkind = \"file\"\npath = \"exports/by_status/*.parquet\"\n\n\
         [destination]\ntable = \"raw.orders_by_status\"\nwrite = \"replace\"\n",
    );
    p.write("jobs/spark/aggregate.py", AGGREGATE_APP);
    let export = p.path().join("exports/orders.parquet");
    std::fs::create_dir_all(p.path().join("exports")).expect("exports folder");
    p.write(
        "jobs/nightly.toml",
        format!(
            r#"
schedule = "0 3 * * *"
timezone = "UTC"

[[step]]
name = "load"
pipeline = "orders"

[[step]]
name = "export"
after = ["load"]
sql = "COPY raw.orders TO '{export}' (FORMAT parquet)"

[[step]]
name = "aggregate"
after = ["export"]
spark = {{ app = "jobs/spark/aggregate.py", master = "local[2]", conf = {{ "spark.sql.shuffle.partitions" = 2, "spark.ui.enabled" = false }}, args = ["exports/orders.parquet", "exports/by_status"] }}

[[step]]
name = "interval"
command = "echo '{{{{ data_interval_start }}}} {{{{ data_interval_end }}}}' > interval.txt"

[[step]]
name = "load_back"
after = ["aggregate"]
pipeline = "by_status"
"#,
            export = export.display()
        ),
    );
    p.ok(&["validate"]);
    let out = p.ok(&["jobs", "run", "nightly"]);
    assert!(out.contains("succeeded"), "{out}");

    let expected = p.query(
        "SELECT status, count(*) AS orders, sum(amount_cents)::BIGINT AS amount_cents \
         FROM raw.orders GROUP BY status ORDER BY status",
    );
    let loaded = p.query(
        "SELECT status, orders, amount_cents::BIGINT AS amount_cents \
         FROM raw.orders_by_status ORDER BY status",
    );
    assert_eq!(loaded, expected, "Spark's sums are DuckDB's");
    assert_eq!(
        p.scalar("SELECT sum(orders)::BIGINT FROM raw.orders_by_status"),
        2_000
    );

    let run = last_run(&p, "nightly");
    let rendered = std::fs::read_to_string(p.path().join("interval.txt")).expect("interval.txt");
    let interval =
        p.query("SELECT DISTINCT interval_start, interval_end FROM raw.orders_by_status");
    assert_eq!(interval.len(), 1, "{interval:?}");
    let got = format!(
        "{} {}",
        interval[0]["interval_start"].as_str().unwrap_or_default(),
        interval[0]["interval_end"].as_str().unwrap_or_default()
    );
    assert_eq!(got, rendered.trim(), "the app got the run's interval");
    let logs = p.ok(&["jobs", "logs", &run, "aggregate"]);
    assert!(logs.contains("spark-submit --master local[2]"), "{logs}");
    assert!(logs.contains("aggregated 2000 orders"), "{logs}");
}

#[test]
fn a_failing_spark_app_fails_the_step_with_its_traceback_in_the_log() {
    if !spark_installed() {
        return;
    }
    let p = TestProject::new();
    p.write(
        "jobs/spark/broken.py",
        "from pyspark.sql import SparkSession\n\
         spark = SparkSession.builder.getOrCreate()\n\
         raise ValueError('no input for this interval')\n",
    );
    p.write(
        "jobs/broken.toml",
        "[[step]]\nname = \"aggregate\"\nspark = { app = \"jobs/spark/broken.py\", master = \"local[1]\" }\n",
    );
    let out = p.fails(&["jobs", "run", "broken"]);
    assert!(out.contains("exited with code 1"), "{out}");
    let run = last_run(&p, "broken");
    let logs = p.ok(&["jobs", "logs", &run, "aggregate"]);
    assert!(
        logs.contains("ValueError: no input for this interval"),
        "{logs}"
    );
}

#[test]
fn spark_steps_are_checked_before_they_run() {
    let p = TestProject::new();
    p.write(
        "jobs/missing.toml",
        "[[step]]\nname = \"aggregate\"\nspark = { app = \"jobs/spark/nowhere.py\" }\n",
    );
    let out = p.fails(&["validate"]);
    assert!(
        out.contains("the application jobs/spark/nowhere.py does not exist"),
        "{out}"
    );

    let p = TestProject::new();
    p.write("jobs/spark/agg.py", "print('hi')\n");
    p.write(
        "jobs/both.toml",
        "[[step]]\nname = \"aggregate\"\nspark = { app = \"jobs/spark/agg.py\", master = \"local\", remote = \"sc://spark:15002\" }\n",
    );
    let out = p.fails(&["validate"]);
    assert!(out.contains("either master"), "{out}");

    let p = TestProject::new();
    p.write("jobs/spark/agg.py", "print('hi')\n");
    p.write(
        "jobs/nospark.toml",
        "[[step]]\nname = \"aggregate\"\nspark = { app = \"jobs/spark/agg.py\", submit = \"no-such-spark-submit\" }\n",
    );
    let out = p.fails(&["jobs", "run", "nospark"]);
    assert!(
        out.contains("no-such-spark-submit not found") && out.contains("pip install pyspark"),
        "{out}"
    );
}
