//! End to end: CSV files as R, pandas, Excel and database exports write
//! them load with every value exact, their null markers as NULL, and no
//! dead letters.

mod common;

use common::TestProject;
use serde_json::{Value, json};

/// A project with one pipeline reading `data/<file>` into table `t`.
fn project(file: &str, contents: impl AsRef<[u8]>, extra: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/t.toml",
        format!("[source]\nkind = \"file\"\npath = \"data/{file}\"\n{extra}[destination]\ntable = \"t\"\n"),
    );
    p.write(&format!("data/{file}"), contents);
    p.ok(&["run"]);
    assert_eq!(
        p.query("select origin, reason from _flowline_dead_letter"),
        Vec::<Value>::new(),
        "no dead letters"
    );
    p
}

/// Asserts that `sql` returns `expected` (`flowline sql --format json`
/// leaves NULL columns out of a row, so nulls in `expected` are dropped).
fn assert_rows(p: &TestProject, sql: &str, expected: Value) {
    let expected: Vec<Value> = expected
        .as_array()
        .expect("an array of rows")
        .iter()
        .map(|row| {
            let mut row = row.clone();
            if let Some(object) = row.as_object_mut() {
                object.retain(|_, v| !v.is_null());
            }
            row
        })
        .collect();
    assert_eq!(p.query(sql), expected, "{sql}");
}

/// Each column's warehouse type, in order.
fn types(p: &TestProject) -> Vec<String> {
    p.query(
        "select data_type from information_schema.columns where table_name = 't' \
         order by ordinal_position",
    )
    .iter()
    .map(|r| r["data_type"].as_str().unwrap_or("").to_string())
    .collect()
}

#[test]
fn r_write_csv_with_quoted_header_row_names_and_na_after_the_sample() {
    // write.csv(df): quoted header with a blank name for the row names,
    // quoted strings, TRUE/FALSE, and NA for missing values. The first NA
    // of `score` is past the 1,000 rows inference samples.
    let mut csv = String::from("\"\",\"name\",\"score\",\"born\",\"member\"\n");
    for i in 1..=1500 {
        let score = if i == 1200 {
            "NA".to_string()
        } else {
            format!("{}.5", i % 90)
        };
        let born = if i % 7 == 0 { "NA" } else { "1990-01-02" };
        let member = match i % 3 {
            0 => "TRUE",
            1 => "FALSE",
            _ => "NA",
        };
        csv.push_str(&format!("\"{i}\",\"n{i}\",{score},{born},{member}\n"));
    }
    let p = project("r.csv", csv, "");
    assert_eq!(
        types(&p),
        ["BIGINT", "VARCHAR", "DOUBLE", "DATE", "BOOLEAN"]
    );
    assert_eq!(p.scalar("select count(*) from t"), 1500);
    assert_eq!(p.scalar("select count(*) from t where score is null"), 1);
    assert_eq!(p.scalar("select column_1 from t where score is null"), 1200);
    assert_eq!(
        p.scalar("select count(*) from t where born is null"),
        1500 / 7
    );
    assert_eq!(p.scalar("select count(*) from t where member is null"), 500);
    assert_rows(
        &p,
        "select name, score, cast(born as varchar) as born, member from t where column_1 = 3",
        json!([{"name": "n3", "score": 3.5, "born": "1990-01-02", "member": true}]),
    );
}

#[test]
fn pandas_to_csv_with_an_index_column_and_empty_nan() {
    // df.to_csv(): an unnamed index column, NaN written as nothing, an
    // integer column holding NaN written as floats.
    let csv = ",id,price,qty,when,flag\n\
               0,1,1.5,3.0,2024-01-02 03:04:05,True\n\
               1,2,,,2024-01-03 00:00:00,False\n\
               2,3,2.25,1.0,,\n";
    let p = project("pandas.csv", csv, "");
    assert_eq!(
        types(&p),
        [
            "BIGINT",
            "BIGINT",
            "DOUBLE",
            "DOUBLE",
            "TIMESTAMP",
            "BOOLEAN"
        ]
    );
    assert_rows(
        &p,
        "select column_1, id, price, qty, cast(\"when\" as varchar) as w, flag from t order by id",
        json!([
            {"column_1": 0, "id": 1, "price": 1.5, "qty": 3.0, "w": "2024-01-02 03:04:05", "flag": true},
            {"column_1": 1, "id": 2, "price": null, "qty": null, "w": "2024-01-03 00:00:00", "flag": false},
            {"column_1": 2, "id": 3, "price": 2.25, "qty": 1.0, "w": null, "flag": null},
        ]),
    );
}

#[test]
fn excel_csv_with_a_byte_order_mark_crlf_and_na_errors() {
    // Excel's "CSV UTF-8": a byte order mark, CRLF line ends, #N/A for
    // failed formulas, quoted text holding commas and line breaks.
    let csv = "\u{feff}Region,Units,Revenue,Note\r\n\
               North,10,1234.5,\"big, early\"\r\n\
               South,#N/A,99.25,\"two\r\nlines\"\r\n\
               East,7,#N/A,\r\n";
    let p = project("excel.csv", csv, "");
    assert_eq!(types(&p), ["VARCHAR", "BIGINT", "DOUBLE", "VARCHAR"]);
    assert_rows(
        &p,
        "select \"Region\", \"Units\", \"Revenue\", \"Note\" from t order by \"Region\"",
        json!([
            {"Region": "East", "Units": 7, "Revenue": null, "Note": null},
            {"Region": "North", "Units": 10, "Revenue": 1234.5, "Note": "big, early"},
            {"Region": "South", "Units": null, "Revenue": 99.25, "Note": "two\r\nlines"},
        ]),
    );
}

#[test]
fn database_exports_with_backslash_n_and_null_markers() {
    // MySQL's SELECT ... INTO OUTFILE writes \N; psql and many tools NULL.
    let mysql = "id,email,score,created_at\n\
                 1,a@x.io,\\N,2024-01-02 03:04:05\n\
                 2,\\N,10,\\N\n\
                 9007199254740993,b@x.io,-3,2024-01-03 00:00:00\n";
    let p = project("mysql.csv", mysql, "");
    assert_eq!(types(&p), ["BIGINT", "VARCHAR", "BIGINT", "TIMESTAMP"]);
    assert_rows(
        &p,
        "select cast(id as varchar) as id, email, score from t order by id",
        json!([
            {"id": "1", "email": "a@x.io", "score": null},
            {"id": "2", "email": null, "score": 10},
            {"id": "9007199254740993", "email": "b@x.io", "score": -3},
        ]),
    );

    let postgres = "id\tname\tamount\n1\tNULL\t1.10\n2\tb\tNULL\n";
    let p = project(
        "pg.tsv",
        postgres,
        "format = \"csv\"\ndelimiter = \"\\t\"\n",
    );
    assert_eq!(types(&p), ["BIGINT", "VARCHAR", "DOUBLE"]);
    assert_rows(
        &p,
        "select id, name, amount from t order by id",
        json!([
            {"id": 1, "name": null, "amount": 1.1},
            {"id": 2, "name": "b", "amount": null},
        ]),
    );
}

#[test]
fn values_past_the_sample_widen_their_column_instead_of_being_rejected() {
    let mut csv = String::from("id,v,big,flag\n");
    for i in 1..=1500 {
        let v = if i == 1200 {
            "2.5".to_string()
        } else {
            i.to_string()
        };
        let big = if i == 1300 {
            "9007199254740993.5".to_string()
        } else {
            format!("{i}.25")
        };
        let flag = if i == 1400 { "maybe" } else { "true" };
        csv.push_str(&format!("{i},{v},{big},{flag}\n"));
    }
    let p = project("w.csv", csv, "");
    assert_eq!(types(&p), ["BIGINT", "DOUBLE", "VARCHAR", "VARCHAR"]);
    assert_eq!(p.scalar("select count(*) from t"), 1500);
    assert_rows(
        &p,
        "select v, big, flag from t where id in (1, 1200, 1300, 1400) order by id",
        json!([
            {"v": 1.0, "big": "1.25", "flag": "true"},
            {"v": 2.5, "big": "1200.25", "flag": "true"},
            {"v": 1300.0, "big": "9007199254740993.5", "flag": "true"},
            {"v": 1400.0, "big": "1400.25", "flag": "maybe"},
        ]),
    );
}

#[test]
fn null_markers_can_be_set_per_source_and_per_column() {
    let csv = "code,score,note\nNA,-1,NA\nUS,7,x\n";
    let p = project(
        "n.csv",
        csv,
        "null_values = [\"\", \"NA\"]\ncolumn_null_values = { code = [], score = [\"-1\"] }\n",
    );
    assert_eq!(types(&p), ["VARCHAR", "BIGINT", "VARCHAR"]);
    assert_rows(
        &p,
        "select code, score, note from t order by code",
        json!([
            {"code": "NA", "score": null, "note": null},
            {"code": "US", "score": 7, "note": "x"},
        ]),
    );
}
