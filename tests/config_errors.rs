//! Malformed project files: every error names file, line and column, says
//! what was expected, and suggests the nearest valid key.

mod common;

use common::TestProject;

fn validate_error(p: &TestProject) -> String {
    p.fails(&["validate"])
}

#[test]
fn misspelt_key_names_file_line_column_and_suggests() {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n\n[destination]\ntable = \"raw.orders\"\nwrite = \"merge\"\nprimary_keys = [\"id\"]\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/orders.toml:8:1"), "{err}");
    assert!(err.contains("unknown field \"primary_keys\""), "{err}");
    assert!(err.contains("did you mean \"primary_key\"?"), "{err}");
    assert!(
        !err.contains("\"source\""),
        "only the top level has [source]: {err}"
    );
}

#[test]
fn misspelt_key_in_the_source_table_is_located() {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n  delimeter = \";\"\n\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/orders.toml:4:3"), "{err}");
    assert!(err.contains("did you mean \"delimiter\"?"), "{err}");
}

#[test]
fn unknown_value_suggests_the_nearest() {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\n\n[destination]\ntable = \"t\"\nwrite = \"apend\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/orders.toml:7:9"), "{err}");
    assert!(err.contains("did you mean \"append\"?"), "{err}");
}

#[test]
fn unknown_source_kind_lists_the_known_ones() {
    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        "[source]\nkind = \"fiel\"\npath = \"x.csv\"\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/x.toml:2:8"), "{err}");
    assert!(err.contains("\"fiel\""), "{err}");
    assert!(err.contains("did you mean \"file\"?"), "{err}");
}

#[test]
fn syntax_errors_point_at_the_spot() {
    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/x.toml:3:"), "{err}");
}

#[test]
fn merge_without_primary_key_is_rejected_at_write() {
    let p = TestProject::new();
    p.write("pipelines/x.toml", "[source]\nkind = \"file\"\npath = \"x.csv\"\n[destination]\ntable = \"t\"\nwrite = \"merge\"\n");
    let err = validate_error(&p);
    assert!(err.contains("pipelines/x.toml:6:9"), "{err}");
    assert!(err.contains("needs primary_key"), "{err}");
}

#[test]
fn a_transform_with_two_steps_is_rejected() {
    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\n\n[[transform]]\nsql = \"select 1\"\ndrop = [\"a\"]\n\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/x.toml:5:1"), "{err}");
    assert!(err.contains("sql and drop"), "{err}");
}

#[test]
fn missing_variable_is_named_with_its_position() {
    let p = TestProject::new();
    p.write("pipelines/x.toml", "[source]\nkind = \"file\"\npath = \"${FLOWLINE_TEST_UNSET_VAR}/x.csv\"\n[destination]\ntable = \"t\"\n");
    let err = validate_error(&p);
    assert!(err.contains("pipelines/x.toml:3:9"), "{err}");
    assert!(err.contains("FLOWLINE_TEST_UNSET_VAR is not set"), "{err}");
}

#[test]
fn positions_stay_right_after_interpolation() {
    let p = TestProject::new();
    p.write(
        ".env",
        "FLOWLINE_TEST_LONG=a-much-longer-value-than-the-variable-name\n",
    );
    p.write(
        "pipelines/x.toml",
        "[source]\nkind = \"file\"\npath = \"${FLOWLINE_TEST_LONG}\"\nheadr = true\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/x.toml:4:1"), "{err}");
    assert!(
        !err.contains("a-much-longer-value"),
        "secret printed: {err}"
    );
}

#[test]
fn project_file_errors_and_all_broken_files_are_reported_together() {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        "[project]\nname = \"x\"\n[warehouse]\nkind = \"duckdb\"\npaht = \"w.duckdb\"\n",
    );
    p.write(
        "pipelines/a.toml",
        "[source]\nkind = \"file\"\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("flowline.toml:5:1"), "{err}");
    assert!(err.contains("did you mean \"path\"?"), "{err}");
    assert!(err.contains("pipelines/a.toml"), "{err}");
    assert!(err.contains("missing field \"path\""), "{err}");
}

#[test]
fn not_a_project_says_how_to_make_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowline"))
        .args(["--project"])
        .arg(dir.path())
        .arg("run")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("flowline init"));
}

#[test]
fn unknown_pipeline_name_suggests_the_nearest() {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\n[destination]\ntable = \"t\"\n",
    );
    let err = p.fails(&["run", "order"]);
    assert!(err.contains("did you mean \"orders\"?"), "{err}");
}

#[test]
fn wrong_value_types_in_the_source_table_are_located() {
    let p = TestProject::new();
    p.write(
        "pipelines/c.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\nbatch_size = \"big\"\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/c.toml:4:14"), "{err}");
    assert!(err.contains("invalid type"), "{err}");
}

#[test]
fn a_misspelt_source_table_suggests_source() {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        "[sources]\nkind = \"file\"\npath = \"x.csv\"\n\n[destination]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("pipelines/orders.toml:1:2"), "{err}");
    assert!(err.contains("unknown field \"sources\""), "{err}");
    assert!(err.contains("\"source\", \"transform\""), "{err}");
    assert!(err.contains("did you mean \"source\"?"), "{err}");
}

#[test]
fn a_list_of_tables_where_one_is_taken_says_so_plainly() {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        "[project]\nname = \"t\"\n\n[[warehouse]]\npath = \"a.duckdb\"\n",
    );
    let err = validate_error(&p);
    assert!(
        err.contains("flowline.toml:4:")
            && err.contains("[[warehouse]] makes a list of tables, and a file has one [warehouse]"),
        "{err}"
    );
    assert!(!err.contains("element"), "{err}");

    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        "[[source]]\nkind = \"file\"\npath = \"x.csv\"\n\n[[destination]]\ntable = \"t\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("[[source]] makes a list of tables"), "{err}");
}

#[test]
fn a_file_that_is_not_utf8_names_the_line_and_byte() {
    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        b"[source]\nkind = \"file\"\npath = \"caf\xe9.csv\"\n[destination]\ntable = \"t\"\n"
            .as_slice(),
    );
    let err = validate_error(&p);
    assert!(
        err.contains("pipelines/x.toml:3:12: not UTF-8 text (byte 34 is 0xe9)"),
        "{err}"
    );
}

#[test]
fn messages_speak_of_tables_numbers_and_durations_not_rust_types() {
    let cases = [
        // (pipeline body after kind, what the message says instead)
        (
            "kind = \"http\"\nurl = \"http://x\"\npaginate = \"page\"",
            "a table with a \"kind\" key",
        ),
        (
            "kind = \"http\"\nurl = \"http://x\"\nmax_pages = -1",
            "a whole number, 0 or more",
        ),
        (
            "kind = \"http\"\nurl = \"http://x\"\ntimeout = 30",
            "a duration such as \"30s\"",
        ),
    ];
    for (source, plain) in cases {
        let p = TestProject::new();
        p.write(
            "pipelines/x.toml",
            format!("[source]\n{source}\n\n[destination]\ntable = \"t\"\n"),
        );
        let err = validate_error(&p);
        assert!(err.contains(plain), "{source}: {err}");
        for rust in ["enum", "struct", "u64", "i128", "PaginateConfig", "wanted"] {
            assert!(!err.contains(rust), "{source}: {err}");
        }
    }
    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        "[source]\nkind = \"file\"\npath = \"x.csv\"\n[destination]\ntable = \"t\"\nwrite = nan\n",
    );
    let err = validate_error(&p);
    assert!(
        err.contains("pipelines/x.toml:6:9: expected a string naming one of the allowed values"),
        "{err}"
    );
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        "[project]\nname = \"t\"\n\n[connections]\nshop = \"postgres://x\"\n",
    );
    let err = validate_error(&p);
    assert!(err.contains("expected a table"), "{err}");
    assert!(!err.contains("ConnectionConfig"), "{err}");
}

#[test]
fn a_huge_value_is_cut_in_the_message() {
    let p = TestProject::new();
    let huge = "x".repeat(1_000_000);
    p.write(
        "pipelines/x.toml",
        format!("[source]\nkind = \"file\"\npath = \"x.csv\"\nbatch_size = \"{huge}\"\n[destination]\ntable = \"t\"\n"),
    );
    let err = validate_error(&p);
    assert!(
        err.contains("pipelines/x.toml:4:14"),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(
        err.contains("(1000000 characters)"),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(err.len() < 2_000, "{} bytes: {}", err.len(), &err[..2000]);
}
