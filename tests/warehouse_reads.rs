//! CSV and NDJSON files DuckDB reads itself (`read_in_warehouse`, the
//! default) land exactly as flowline's own reader lands them: the same rows
//! in the same order, the same values and column types, the same dead
//! letters and counts. Clean files are read by the warehouse; a file it
//! cannot load exactly (a value that widens its column, a malformed line)
//! is read by flowline, so the result never depends on who read it.

mod common;

use proptest::prelude::*;
use serde_json::Value;

use common::TestProject;

/// A project loading `data/*.csv` into `raw.t`, with `options` in `[source]`.
fn project(read_in_warehouse: bool, options: &str) -> TestProject {
    project_of("csv", read_in_warehouse, options)
}

/// A project loading `data/*.{extension}` into `raw.t`, with `options` in
/// `[source]`.
fn project_of(extension: &str, read_in_warehouse: bool, options: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        format!(
            "[source]\nkind = \"file\"\npath = \"data/*.{extension}\"\n\
             read_in_warehouse = {read_in_warehouse}\n{options}\n\n\
             [destination]\ntable = \"raw.t\"\n"
        ),
    );
    p
}

/// What a run left behind, without what differs between projects (times,
/// ids, the project's folder).
#[derive(Debug, PartialEq)]
struct Outcome {
    succeeded: bool,
    /// The run's counts and error, as `run --json` reports them.
    report: Vec<(String, Value)>,
    /// The table's columns and types.
    columns: Vec<Value>,
    /// Every row, every value as text, in the order loaded.
    rows: Vec<Value>,
    dead_letters: Vec<Value>,
}

/// Runs the pipeline of `p` once (verbosely) and reads what it left, with
/// whether the warehouse read a file itself.
fn run(p: &TestProject) -> (Outcome, bool) {
    let out = p.flowline(&["-v", "run", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("a JSON report ({e}):\n{stdout}\n{stderr}"));
    let folder = p.path().to_string_lossy().to_string();
    let run = &report["runs"][0];
    let report = ["status", "rows", "bad_rows", "duplicates", "error"]
        .iter()
        .map(|key| {
            let value = match &run[*key] {
                Value::String(s) => Value::String(s.replace(&folder, "<project>")),
                other => other.clone(),
            };
            (key.to_string(), value)
        })
        .collect();
    let columns = p.query(
        "select column_name, data_type from information_schema.columns \
         where table_schema = 'raw' and table_name = 't' order by ordinal_position",
    );
    let rows = if columns.is_empty() {
        Vec::new()
    } else {
        p.query("select columns(*)::varchar from raw.t order by rowid")
    };
    let dead_letters =
        p.query("select origin, reason, raw from _flowline_dead_letter order by rowid");
    let outcome = Outcome {
        succeeded: out.status.success(),
        report,
        columns,
        rows,
        dead_letters,
    };
    (outcome, stderr.contains("read by the warehouse"))
}

/// Loads `csv` with and without the warehouse reading it and checks that
/// both land the same; returns whether the warehouse read it.
fn same_either_way(csv: &[u8], options: &str) -> bool {
    same_either_way_as("csv", csv, options)
}

/// Loads `text` as the file `data/t.{extension}` with and without the
/// warehouse reading it and checks that both land the same; returns
/// whether the warehouse read it.
fn same_either_way_as(extension: &str, text: &[u8], options: &str) -> bool {
    let file = format!("data/t.{extension}");
    let by_flowline = project_of(extension, false, options);
    by_flowline.write(&file, text);
    let (expected, read) = run(&by_flowline);
    assert!(!read, "read_in_warehouse = false reads in flowline");
    let by_warehouse = project_of(extension, true, options);
    by_warehouse.write(&file, text);
    let (outcome, read) = run(&by_warehouse);
    assert_eq!(
        outcome,
        expected,
        "the warehouse (read it itself: {read}) landed the file differently:\n{}",
        String::from_utf8_lossy(text)
    );
    read
}

#[test]
fn a_clean_file_is_read_by_the_warehouse_with_the_same_result() {
    let csv = "id,price,day,at,ok,name\n\
               1,2.50,2024-01-02,2024-01-02 03:04:05,true,\"Smith, J\"\n\
               2,NA,2024-02-29,2024-02-29T10:11:12.5,FALSE,\"say \"\"hi\"\"\"\n\
               3,-7,,2024-03-01 00:00:00,,\"two\nlines\"\n";
    assert!(same_either_way(csv.as_bytes(), ""), "the warehouse read it");
    let crlf = csv.replace('\n', "\r\n");
    assert!(same_either_way(crlf.as_bytes(), ""), "CRLF lines too");
    let bom = format!("\u{feff}{csv}");
    assert!(
        same_either_way(bom.as_bytes(), ""),
        "after a byte-order mark too"
    );
    assert!(
        same_either_way(b"a;b\n1;x\n2;y", "delimiter = \";\""),
        "with another delimiter and no final line break"
    );
}

#[test]
fn a_value_that_widens_its_column_leaves_the_file_to_flowline() {
    // The sample of one row infers BIGINT; 2.5 widens the column to DOUBLE.
    let csv = b"id,v\n1,10\n2,2.5\n3,9007199254740993\n";
    assert!(!same_either_way(csv, "infer_schema_rows = 1"));
}

#[test]
fn malformed_files_are_left_to_flowline() {
    let long_row = format!("id,v\n1,{}\n", "x".repeat(10_001));
    for csv in [
        &b"id,v\n1,a\n2,b,extra\n3,c\n"[..],
        b"id,v\n1,a\n2,\"unterminated\n3,c\n",
        b"id,v\n1,a\n2,\xff\n",
        long_row.as_bytes(),
    ] {
        assert!(
            !same_either_way(csv, ""),
            "{}",
            String::from_utf8_lossy(csv)
        );
    }
    // An empty line: both skip it where there are columns to tell.
    same_either_way(b"id,v\n1,a\n\n2,b\n", "");
    // Lines flowline and the warehouse would split differently.
    for csv in [&b"v\na\n\nb\n"[..], b"id,v\n1,a\r2,b\n", b"v\na\rb\n"] {
        assert!(
            !same_either_way(csv, ""),
            "{}",
            String::from_utf8_lossy(csv)
        );
    }
}

#[test]
fn per_column_null_markers_and_a_header_over_two_lines_are_read_by_flowline() {
    let csv = b"id,v\n1,-1\n2,NA\n";
    assert!(!same_either_way(
        csv,
        "column_null_values = { v = [\"-1\"] }"
    ));
    assert!(!same_either_way(b"\"i\nd\",v\n1,a\n", ""));
}

#[test]
fn a_compressed_file_is_read_by_flowline() {
    use std::io::Write as _;
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv.gz\"\n\n[destination]\ntable = \"raw.t\"\n",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"id,v\n1,a\n2,b\n").expect("compresses");
    p.write("data/t.csv.gz", gz.finish().expect("compressed"));
    let (outcome, read) = run(&p);
    assert!(!read);
    assert!(outcome.succeeded, "{outcome:?}");
    assert_eq!(outcome.rows.len(), 2);
}

#[test]
fn a_table_with_other_types_leaves_the_file_to_flowline() {
    let p = project(true, "");
    p.write("data/1.csv", "id,v\n1,x\n");
    let (_, read) = run(&p);
    assert!(read);
    // `v` is VARCHAR in the table, BIGINT in the next file: the batch path
    // conforms it.
    p.write("data/2.csv", "id,v\n2,20\n");
    let (outcome, read) = run(&p);
    assert!(!read, "{outcome:?}");
    assert!(outcome.succeeded);
    assert_eq!(p.scalar("select count(*) from raw.t where v = '20'"), 1);
    // Same columns and types again: read by the warehouse.
    p.write("data/3.csv", "id,v\n3,y\n");
    let (_, read) = run(&p);
    assert!(read);
    assert_eq!(p.scalar("select count(*) from raw.t"), 3);
}

#[test]
fn a_transform_reads_the_file_in_flowline() {
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n\n\
         [[transform]]\nrename = { v = \"value\" }\n\n\
         [destination]\ntable = \"raw.t\"\n",
    );
    p.write("data/t.csv", "id,v\n1,x\n");
    let (outcome, read) = run(&p);
    assert!(!read);
    assert!(outcome.succeeded, "{outcome:?}");
    assert_eq!(p.scalar("select count(*) from raw.t where value = 'x'"), 1);
}

/// Values of one kind, for a column mostly of that kind.
const KINDS: &[&[&str]] = &[
    &["1", "-12", "007", "0", "9223372036854775807", "-0"],
    &["2.5", "-7.90", "1e3", "0.1", "3", ".5"],
    &["true", "FALSE", "True"],
    &["2024-01-02", "1999-12-31", "2024-02-29"],
    &[
        "2024-01-02 03:04:05",
        "2024-01-02T03:04:05.123456",
        "2024-01-02 03:04",
    ],
    &["2024-01-02T03:04:05Z", "2024-01-02 03:04:05+02:00"],
    &[
        "x",
        "hello world",
        "\"Smith, J\"",
        "é",
        "\"\"\"quoted\"\"\"",
    ],
];

/// Anything: null markers, near-misses of every kind, quoting.
const ODDITIES: &[&str] = &[
    "",
    "NA",
    "null",
    "\"\"",
    "\"NA\"",
    "na",
    "+1",
    " 1",
    "1 ",
    "9007199254740993",
    "0.10000000000000000001",
    "NaN",
    "inf",
    "2024-02-30",
    "2024-1-2",
    "2024-01-02T03:04:05.123456789",
    "\"multi\nline\"",
    "\"multi\r\nline\"",
    "a\"b",
    "\"q\"x",
    "\"unterminated",
    " ",
    "\\N",
    "x\ry",
    "x\r",
];

/// A CSV text: a header, then rows of mostly `width` fields, each column
/// mostly of one kind; half the files are clean (every row `width` values
/// of its columns' kinds), the others hold oddities and malformed rows.
fn csv_text() -> impl Strategy<Value = (String, bool)> {
    (1usize..5)
        .prop_flat_map(|width| {
            let kinds = proptest::collection::vec(0..KINDS.len(), width);
            let rows = proptest::collection::vec(
                (
                    proptest::collection::vec((0u8..100, any::<prop::sample::Index>()), width),
                    0u8..100,
                ),
                0..25,
            );
            (
                Just(width),
                kinds,
                rows,
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(width, kinds, rows, crlf, final_break, clean)| {
            let mut lines = vec![
                (1..=width)
                    .map(|i| format!("c{i}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ];
            for (cells, shape) in rows {
                let mut fields: Vec<String> = cells
                    .iter()
                    .zip(&kinds)
                    .map(|((odd, pick), kind)| {
                        // Half the files hold only values of their columns' kinds.
                        let pool = if clean || *odd < 85 {
                            KINDS[*kind]
                        } else {
                            ODDITIES
                        };
                        pool[pick.index(pool.len())].to_string()
                    })
                    .collect();
                match shape {
                    _ if clean => {}
                    0..=2 => fields.push("extra".into()),
                    3..=4 if fields.len() > 1 => {
                        fields.pop();
                    }
                    5 => fields.clear(),
                    _ => {}
                }
                lines.push(fields.join(","));
            }
            let end = if crlf { "\r\n" } else { "\n" };
            let mut text = lines.join(end);
            if final_break {
                text.push_str(end);
            }
            (text, crlf)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random files, clean and malformed, with and without a sample too
    /// small to see every kind: the same outcome whoever reads them.
    #[test]
    fn any_csv_lands_the_same_whoever_reads_it(
        (text, _crlf) in csv_text(),
        small_sample in any::<bool>(),
    ) {
        let options = if small_sample { "infer_schema_rows = 2" } else { "" };
        same_either_way(text.as_bytes(), options);
    }

    /// Random NDJSON files, clean and not, with batches small enough for
    /// later lines to widen the first batch's columns: the same outcome
    /// whoever reads them.
    #[test]
    fn any_ndjson_lands_the_same_whoever_reads_it(
        text in ndjson_text(),
        small_batches in any::<bool>(),
    ) {
        let options = if small_batches { "batch_size = 3" } else { "" };
        same_either_way_as("ndjson", text.as_bytes(), options);
    }
}

#[test]
fn a_clean_ndjson_file_is_read_by_the_warehouse_with_the_same_result() {
    let text = "{\"id\": 1, \"price\": 2.50, \"ok\": true, \"name\": \"Smith, J\", \"n\": null}\n\
                \n\
                  {\"name\": \"say \\\"hi\\\" \\u00e9\", \"id\": -2, \"price\": 1e3, \"n\": 7}  \r\n\
                {\"id\": 3, \"price\": 0.1000000000000000055511151231257827, \"ok\": false}\n\
                {}";
    assert!(
        same_either_way_as("ndjson", text.as_bytes(), ""),
        "the warehouse read it"
    );
}

#[test]
fn ndjson_lines_the_warehouse_cannot_load_exactly_leave_the_file_to_flowline() {
    for text in [
        // 2.5 widens the column the first batch (of two lines) made BIGINT.
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 2.5}\n",
        // A key the first batch did not have adds a column.
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3, \"new\": \"x\"}\n",
        // A nested value in a text column keeps its JSON text.
        "{\"id\": 1, \"v\": \"a\"}\n{\"id\": 2, \"v\": \"b\"}\n{\"id\": 3, \"v\": {\"x\": 1}}\n",
        // Dead letters: not an object, not JSON, not UTF-8.
        "{\"id\": 1}\n{\"id\": 2}\n[3]\n",
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": \n",
        "{\"id\": 1}\n{\"id\": 2}\n{\"id\": \"\u{1}\"}\n",
    ] {
        assert!(
            !same_either_way_as("ndjson", text.as_bytes(), "batch_size = 2"),
            "{text}"
        );
    }
    assert!(!same_either_way_as(
        "ndjson",
        b"{\"id\": 1}\n{\"id\": 2}\n{\"id\": \"\xff\"}\n",
        "batch_size = 2"
    ));
    // Nested values in the first batch: columns the warehouse does not
    // read records into.
    assert!(!same_either_way_as(
        "ndjson",
        b"{\"id\": 1, \"user\": {\"name\": \"a\"}, \"tags\": [1]}\n",
        ""
    ));
}

/// JSON values as files write them, of every kind a column may hold.
const JSON_VALUES: &[&str] = &[
    "1",
    "-12",
    "0",
    "9223372036854775807",
    "9223372036854775808",
    "-0",
    "2.5",
    "-7.90",
    "1e3",
    "1E-2",
    "0.1",
    "9007199254740993",
    "true",
    "false",
    "null",
    "\"x\"",
    "\"12\"",
    "\"2.50\"",
    "\"true\"",
    "\"\"",
    "\"say \\\"hi\\\"\"",
    "\"\\u00e9\\n\"",
    "\"é\"",
    "[1, 2]",
    "{\"a\": 1}",
];

/// An NDJSON text: objects of up to four keys, mostly in one order, with
/// blank lines and now and then a line that is no object.
fn ndjson_text() -> impl Strategy<Value = String> {
    let entry = (0usize..5, 0..JSON_VALUES.len());
    let line = (proptest::collection::vec(entry, 0..5), 0u8..100);
    proptest::collection::vec(line, 1..12).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(entries, shape)| match shape {
                0..=2 => String::new(),
                3 => "[1]".to_string(),
                4 => "{\"a\": ".to_string(),
                _ => {
                    let mut seen = Vec::new();
                    let entries: Vec<String> = entries
                        .into_iter()
                        .filter(|(key, _)| {
                            let new = !seen.contains(key);
                            seen.push(*key);
                            new
                        })
                        .map(|(key, value)| {
                            format!(
                                "\"{}\": {}",
                                ["a", "b", "c", "d", "e"][key],
                                JSON_VALUES[value]
                            )
                        })
                        .collect();
                    format!("{{{}}}", entries.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}
