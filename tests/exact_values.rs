//! Property: whatever a source holds (integers that turn into floats, big
//! integers, text, nulls, nested objects, across batch boundaries and
//! stream messages), every value lands in the warehouse exactly as the
//! source held it, or its row is a dead letter with a reason, and nothing
//! is counted twice. Checked for NDJSON, JSON documents, CSV and Parquet
//! files, and for a stream source (RabbitMQ).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use serde_json::{Value, json};

use common::rabbitmq::rabbitmq;
use common::{TestProject, unique};

/// One value of the source.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Nested(i64),
}

impl Cell {
    /// The value as a JSON source holds it.
    fn json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => json!(i),
            Cell::Float(f) => json!(f),
            Cell::Text(s) => json!(s),
            Cell::Nested(i) => json!({ "x": i }),
        }
    }

    /// The value as a CSV or Parquet text column holds it.
    fn text(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Text(s) => Some(s.clone()),
            other => Some(other.json().to_string()),
        }
    }
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        1 => Just(Cell::Null),
        4 => prop_oneof![-1000i64..1000, any::<i64>()].prop_map(Cell::Int),
        3 => prop_oneof![
            (-1e6f64..1e6).prop_map(|f| (f * 100.0).round() / 100.0),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
        .prop_map(Cell::Float),
        2 => "s[a-z]{0,6}".prop_map(Cell::Text),
        1 => any::<i64>().prop_map(Cell::Nested),
    ]
}

/// A column as runs of one kind of value (so whole batches can hold only
/// integers before floats arrive), then shuffled kinds.
fn column(rows: usize) -> impl Strategy<Value = Vec<Cell>> {
    let run = (cell(), 1usize..6).prop_flat_map(|(first, len)| {
        let same = match first {
            Cell::Null => Just(Cell::Null).boxed(),
            Cell::Int(_) => any::<i64>().prop_map(Cell::Int).boxed(),
            Cell::Float(_) => (-1e9f64..1e9).prop_map(Cell::Float).boxed(),
            Cell::Text(_) => "s[a-z]{0,6}".prop_map(Cell::Text).boxed(),
            Cell::Nested(_) => any::<i64>().prop_map(Cell::Nested).boxed(),
        };
        proptest::collection::vec(same, len)
    });
    proptest::collection::vec(run, 1..8).prop_map(move |runs| {
        let mut cells: Vec<Cell> = runs.into_iter().flatten().collect();
        cells.resize(rows, Cell::Null);
        cells
    })
}

/// Records `id`, `a` (runs of one kind) and `b` (any kind per row).
fn records() -> impl Strategy<Value = Vec<(Cell, Cell)>> {
    (1usize..30).prop_flat_map(|rows| {
        (column(rows), proptest::collection::vec(cell(), rows))
            .prop_map(|(a, b)| a.into_iter().zip(b).collect())
    })
}

/// Whether `stored` (a value as `to_json` renders it) is exactly `source`.
fn same(source: &Value, stored: &Value) -> bool {
    match (source, stored) {
        (Value::Null, Value::Null) => true,
        (Value::Number(a), Value::Number(b)) => same_number(a, &b.to_string()),
        (Value::Number(a), Value::String(b)) => same_number(a, b),
        // Text equal as text, or, in a column widened from numbers to
        // text, the same number ("-226" held as the double -226.0).
        (Value::String(a), Value::String(b)) => {
            a == b
                || a.parse::<serde_json::Number>()
                    .is_ok_and(|a| b.parse::<f64>().is_ok() && same_number(&a, b))
        }
        // A text source (CSV) whose column came out as numbers.
        (Value::String(a), Value::Number(b)) => a
            .parse::<serde_json::Number>()
            .is_ok_and(|a| same_number(&a, &b.to_string())),
        (Value::String(a), Value::Object(_)) => {
            serde_json::from_str::<Value>(a).is_ok_and(|a| same(&a, stored))
        }
        (Value::Object(_), Value::String(b)) => {
            serde_json::from_str::<Value>(b).is_ok_and(|b| same(source, &b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

/// Whether the number written `text` is exactly `source`.
fn same_number(source: &serde_json::Number, text: &str) -> bool {
    if let Some(i) = source.as_i64() {
        // 3 stored as the double 3.0 is still 3; 2^53 + 1 stored as a
        // double would be 2^53.
        return text.parse::<i128>().ok() == Some(i as i128)
            || text.parse::<f64>().is_ok_and(|f| {
                f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 && f as i64 == i
            });
    }
    source
        .as_f64()
        .is_some_and(|f| text.parse::<f64>().is_ok_and(|g| g == f))
}

/// Checks the table `raw.t` and the dead letters against `rows`; `reported`
/// is what the run said it loaded.
fn check(p: &TestProject, rows: &[(Value, Value)], reported: Option<i64>) {
    let loaded = p.query(
        "select id, to_json(a)::varchar as a, to_json(b)::varchar as b from raw.t order by id",
    );
    let letters = p.query("select reason, raw from _flowline_dead_letter");
    assert!(
        letters
            .iter()
            .all(|l| !l["reason"].as_str().unwrap_or("").is_empty()),
        "every dead letter says why: {letters:?}"
    );
    assert_eq!(
        loaded.len() + letters.len(),
        rows.len(),
        "every row is loaded or a dead letter, once: loaded {loaded:?}, letters {letters:?}"
    );
    if let Some(reported) = reported {
        assert_eq!(reported, loaded.len() as i64, "the run counts what landed");
    }
    let mut previous = -1;
    for row in &loaded {
        let id = row["id"].as_i64().expect("an id");
        assert!(id > previous, "id {id} loaded twice");
        previous = id;
        let (a, b) = &rows[id as usize];
        for (column, source) in [("a", a), ("b", b)] {
            let stored: Value = match &row[column] {
                Value::String(text) => serde_json::from_str(text).expect("to_json"),
                other => other.clone(),
            };
            assert!(
                same(source, &stored),
                "row {id} column {column}: the source held {source}, the warehouse holds {stored}"
            );
        }
    }
}

/// Runs the file pipeline of `p` and checks it against `rows`.
fn run_and_check(p: &TestProject, rows: &[(Value, Value)]) {
    let out = p.ok(&["run", "--json"]);
    let report: Value = serde_json::from_str(&out).expect("json report");
    let reported = report["runs"][0]["rows"].as_i64();
    check(p, rows, reported);
}

fn file_project(path: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        format!(
            "[source]\nkind = \"file\"\npath = \"{path}\"\nbatch_size = 3\n\n\
             [destination]\ntable = \"raw.t\"\n"
        ),
    );
    p
}

fn json_rows(records: &[(Cell, Cell)]) -> Vec<(Value, Value)> {
    records.iter().map(|(a, b)| (a.json(), b.json())).collect()
}

fn json_objects(records: &[(Cell, Cell)]) -> Vec<Value> {
    records
        .iter()
        .enumerate()
        .map(|(id, (a, b))| json!({ "id": id, "a": a.json(), "b": b.json() }))
        .collect()
}

/// One Parquet file per run of `a`: a file holds one type, the next
/// another (integers, then doubles, then text).
fn parquet_files(p: &TestProject, records: &[(Cell, Cell)]) -> Vec<(Value, Value)> {
    let mut rows = Vec::new();
    let mut start = 0;
    let mut file = 0;
    while start < records.len() {
        let kind = std::mem::discriminant(&records[start].0);
        let end = (start..records.len())
            .find(|&i| std::mem::discriminant(&records[i].0) != kind)
            .unwrap_or(records.len());
        let cells = &records[start..end];
        let (data_type, a): (DataType, ArrayRef) = match &cells[0].0 {
            Cell::Int(_) | Cell::Null => (
                DataType::Int64,
                Arc::new(Int64Array::from(
                    cells
                        .iter()
                        .map(|(a, _)| match a {
                            Cell::Int(i) => Some(*i),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                )),
            ),
            Cell::Float(_) => (
                DataType::Float64,
                Arc::new(Float64Array::from(
                    cells
                        .iter()
                        .map(|(a, _)| match a {
                            Cell::Float(f) => Some(*f),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                )),
            ),
            _ => (
                DataType::Utf8,
                Arc::new(StringArray::from(
                    cells.iter().map(|(a, _)| a.text()).collect::<Vec<_>>(),
                )),
            ),
        };
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((start as i64)..(end as i64)));
        let b: ArrayRef = Arc::new(StringArray::from(
            cells.iter().map(|(_, b)| b.text()).collect::<Vec<_>>(),
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", data_type, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![ids, a, b]).expect("batch");
        let path = p.path().join(format!("data/part-{file:03}.parquet"));
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        let out = std::fs::File::create(&path).expect("create");
        let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema, None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        for (a, b) in cells {
            let a = match a {
                Cell::Int(_) | Cell::Float(_) | Cell::Null => a.json(),
                other => other.text().map_or(Value::Null, Value::String),
            };
            rows.push((a, b.text().map_or(Value::Null, Value::String)));
        }
        start = end;
        file += 1;
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ndjson_values_land_exactly(records in records()) {
        let p = file_project("data/*.ndjson");
        let lines: Vec<String> = json_objects(&records).iter().map(Value::to_string).collect();
        p.write("data/t.ndjson", lines.join("\n") + "\n");
        run_and_check(&p, &json_rows(&records));
    }

    #[test]
    fn json_document_values_land_exactly(records in records()) {
        let p = file_project("data/*.json");
        p.write("data/t.json", Value::Array(json_objects(&records)).to_string());
        run_and_check(&p, &json_rows(&records));
    }

    #[test]
    fn csv_values_land_exactly(records in records()) {
        let p = file_project("data/*.csv");
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(["id", "a", "b"]).expect("header");
        for (id, (a, b)) in records.iter().enumerate() {
            writer
                .write_record([id.to_string(), a.text().unwrap_or_default(), b.text().unwrap_or_default()])
                .expect("row");
        }
        p.write("data/t.csv", writer.into_inner().expect("csv"));
        let rows: Vec<(Value, Value)> = records
            .iter()
            .map(|(a, b)| {
                let text = |c: &Cell| c.text().map_or(Value::Null, Value::String);
                (text(a), text(b))
            })
            .collect();
        run_and_check(&p, &rows);
    }

    #[test]
    fn parquet_values_land_exactly(records in records()) {
        let p = file_project("data/*.parquet");
        let rows = parquet_files(&p, &records);
        run_and_check(&p, &rows);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn stream_message_values_land_exactly(records in records()) {
        if !rabbitmq() {
            return Ok(());
        }
        let queue = unique("exact");
        let payloads: Vec<String> = json_objects(&records).iter().map(Value::to_string).collect();
        common::rabbitmq::publish(&queue, &payloads);
        let p = TestProject::new();
        p.write(
            "pipelines/t.toml",
            format!(
                "mode = \"stream\"\n\n[source]\nkind = \"rabbitmq\"\nurl = \"{}\"\nqueue = \"{queue}\"\n\n\
                 [batch]\nmax_rows = 3\nmax_wait = \"50ms\"\n\n[destination]\ntable = \"raw.t\"\n",
                common::rabbitmq::AMQP
            ),
        );
        let mut child = p
            .command(&["stream", "t"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start flowline stream");
        let deadline = Instant::now() + Duration::from_secs(60);
        let total = records.len() as i64;
        let count = |sql: &str| {
            let out = p.flowline(&["sql", "--format", "json", sql]);
            serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v[0]["n"].as_i64())
                .unwrap_or(0)
        };
        while count("select count(*) as n from _flowline_dead_letter")
            + count("select count(*) as n from raw.t")
            != total
        {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the stream never loaded {total} rows");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        common::rabbitmq::stop(child.id());
        let out = child.wait_with_output().expect("wait");
        prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        common::rabbitmq::purge_and_delete(&queue);
        check(&p, &json_rows(&records), None);
    }
}
