//! Helpers for end-to-end tests: a temporary project, the built binary,
//! and queries against the warehouse it loaded.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A throwaway flowline project in a temporary folder.
pub struct TestProject {
    dir: tempfile::TempDir,
}

impl TestProject {
    /// A project with a default `flowline.toml`.
    pub fn new() -> Self {
        let project = TestProject {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        project.write("flowline.toml", "[project]\nname = \"test\"\n");
        project
    }

    /// The project folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `relative` (creating folders).
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// A flowline command on this project, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowline"));
        cmd.arg("--project").arg(self.dir.path()).args(args);
        cmd.env_remove("FLOWLINE_LOG");
        cmd
    }

    /// Runs flowline with `args` on this project.
    pub fn flowline(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run flowline")
    }

    /// Runs flowline and fails the test (showing stderr) unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.flowline(args);
        assert!(
            out.status.success(),
            "flowline {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs flowline expecting failure; returns stdout + stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.flowline(args);
        assert!(
            !out.status.success(),
            "flowline {args:?} should have failed"
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `flowline sql --json QUERY` parsed into rows.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        let out = self.ok(&["sql", "--format", "json", sql]);
        let value: Value = serde_json::from_str(out.trim()).expect("json rows");
        value.as_array().cloned().unwrap_or_default()
    }

    /// The single value of a one-row, one-column query, as i64.
    pub fn scalar(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        let row = rows.first().and_then(|r| r.as_object()).expect("one row");
        let value = row.values().next().expect("one column");
        match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .expect("number"),
            Value::String(s) => s.parse().expect("numeric string"),
            other => panic!("not a number: {other}"),
        }
    }
}

/// A CSV of `rows` orders with ids `first..first+rows`.
pub fn orders_csv(first: i64, rows: i64) -> String {
    let mut csv = String::from("id,customer,amount_cents,status\n");
    for id in first..first + rows {
        csv.push_str(&format!(
            "{id},c{},{},{}\n",
            id % 97,
            id * 3 % 10_000,
            if id % 5 == 0 { "refunded" } else { "paid" }
        ));
    }
    csv
}
