//! `spark = { app = "jobs/spark/agg.py", master = "local[2]" }`: submits a
//! Spark application with `spark-submit` (PySpark from PyPI brings it),
//! its log captured into the step's, a non-zero exit the step's failure.
//! The run's data interval follows the application's own arguments as
//! `--data-interval-start <start> --data-interval-end <end>`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::command::{find_program, run_program};
use super::{Outcome, StepAction, StepContext, StepKind, check_template};
use crate::jobs::ProjectRefs;

/// The table of a `spark` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkStep {
    /// The application: a Python file or a jar, relative to the project
    /// folder.
    pub app: String,
    /// The cluster, as `spark-submit --master` takes it (`local[2]`,
    /// `spark://host:7077`, `yarn`, `k8s://...`). Default `local[*]`.
    #[serde(default)]
    pub master: Option<String>,
    /// A Spark Connect server (`sc://host:15002`) instead of a master.
    #[serde(default)]
    pub remote: Option<String>,
    /// Spark properties, each passed as `--conf key=value`.
    #[serde(default)]
    pub conf: BTreeMap<String, ConfValue>,
    /// The application's arguments (templates, like a command's).
    #[serde(default)]
    pub args: Vec<String>,
    /// The application's name in Spark. Default `<job>.<step>`.
    #[serde(default)]
    pub name: Option<String>,
    /// The main class of a jar application.
    #[serde(default)]
    pub class: Option<String>,
    /// Python files shipped with the application (`--py-files`).
    #[serde(default)]
    pub py_files: Vec<String>,
    /// Jars on the driver's and executors' class paths (`--jars`).
    #[serde(default)]
    pub jars: Vec<String>,
    /// Maven coordinates of packages to fetch (`--packages`).
    #[serde(default)]
    pub packages: Vec<String>,
    /// The `spark-submit` program. Default: `$SPARK_HOME/bin/spark-submit`
    /// when `SPARK_HOME` is set, else `spark-submit` on `PATH`.
    #[serde(default)]
    pub submit: Option<String>,
    /// Whether the data interval is appended to `args`. Default true.
    #[serde(default = "yes")]
    pub interval_args: bool,
}

fn yes() -> bool {
    true
}

/// A Spark property's value: TOML strings, numbers and booleans alike.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConfValue {
    /// `"4g"`.
    Text(String),
    /// `4`.
    Integer(i64),
    /// `0.5`.
    Float(f64),
    /// `true`.
    Bool(bool),
}

impl std::fmt::Display for ConfValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfValue::Text(text) => f.write_str(text),
            ConfValue::Integer(n) => write!(f, "{n}"),
            ConfValue::Float(x) => write!(f, "{x}"),
            ConfValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl StepKind for SparkStep {
    const KEY: &'static str = "spark";
    const SUMMARY: &'static str = "submit a Spark application with spark-submit";
}

impl SparkStep {
    /// The `spark-submit` to run, as configured or found.
    fn submit_program(&self, env: &BTreeMap<String, String>) -> String {
        if let Some(submit) = &self.submit {
            return submit.clone();
        }
        match env.get("SPARK_HOME").filter(|home| !home.is_empty()) {
            Some(home) => Path::new(home)
                .join("bin/spark-submit")
                .display()
                .to_string(),
            None => "spark-submit".into(),
        }
    }

    /// The whole command line, with `render` applied to every template.
    fn argv(
        &self,
        submit: String,
        default_name: &str,
        interval: (&str, &str),
        render: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Vec<String>, String> {
        let mut argv = vec![submit];
        match (&self.remote, &self.master) {
            (Some(remote), _) => argv.extend(["--remote".into(), render(remote)?]),
            (None, master) => argv.extend([
                "--master".into(),
                render(master.as_deref().unwrap_or("local[*]"))?,
            ]),
        }
        let name = match &self.name {
            Some(name) => render(name)?,
            None => default_name.to_string(),
        };
        argv.extend(["--name".into(), name]);
        if let Some(class) = &self.class {
            argv.extend(["--class".into(), class.clone()]);
        }
        for (flag, list) in [
            ("--py-files", &self.py_files),
            ("--jars", &self.jars),
            ("--packages", &self.packages),
        ] {
            if !list.is_empty() {
                argv.extend([flag.into(), list.join(",")]);
            }
        }
        for (key, value) in &self.conf {
            argv.extend([
                "--conf".into(),
                format!("{key}={}", render(&value.to_string())?),
            ]);
        }
        argv.push(render(&self.app)?);
        for arg in &self.args {
            argv.push(render(arg)?);
        }
        if self.interval_args {
            argv.extend([
                "--data-interval-start".into(),
                interval.0.to_string(),
                "--data-interval-end".into(),
                interval.1.to_string(),
            ]);
        }
        Ok(argv)
    }
}

#[async_trait::async_trait]
impl StepAction for SparkStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        let on = match (&self.remote, &self.master) {
            (Some(remote), _) => remote.as_str(),
            (None, master) => master.as_deref().unwrap_or("local[*]"),
        };
        format!("spark {} on {on}", self.app)
    }

    fn check(&self, project: &ProjectRefs) -> Result<(), String> {
        if self.app.trim().is_empty() {
            return Err("spark: name the application, e.g. app = \"jobs/spark/agg.py\"".into());
        }
        if self.remote.is_some() && self.master.is_some() {
            return Err(
                "spark: give either master (a cluster) or remote (a Spark Connect server), not both"
                    .into(),
            );
        }
        let templated = self.app.contains("{{");
        if !templated && !project.dir.join(&self.app).is_file() {
            return Err(format!(
                "spark: the application {} does not exist in the project folder",
                self.app
            ));
        }
        [&self.app]
            .into_iter()
            .chain(&self.args)
            .chain(&self.master)
            .chain(&self.remote)
            .chain(&self.name)
            .try_for_each(|text| check_template(Self::KEY, text))
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        let submit = self.submit_program(&ctx.vars.env);
        if find_program(
            &submit,
            &ctx.dir,
            ctx.vars.env.get("PATH").map(String::as_str),
        )
        .is_none()
        {
            return Err(format!(
                "spark: {submit} not found: install Spark (`pip install pyspark` brings \
                 spark-submit), set SPARK_HOME, or name the program with submit = \"...\""
            ));
        }
        let argv = self.argv(
            submit,
            &format!("{}.{}", ctx.vars.job, ctx.step),
            (&ctx.vars.data_interval_start, &ctx.vars.data_interval_end),
            |text| ctx.render(text),
        )?;
        ctx.log.flowline(format!("running {}", argv.join(" ")));
        run_program(ctx, &argv).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(toml_text: &str) -> SparkStep {
        toml::from_str(toml_text).expect("a spark step")
    }

    #[test]
    fn the_command_line_has_master_conf_app_args_and_interval() {
        let spark = step(
            r#"
            app = "jobs/spark/agg.py"
            master = "local[2]"
            conf = { "spark.sql.shuffle.partitions" = 4, "spark.ui.enabled" = false, "spark.driver.memory" = "1g" }
            args = ["--input", "exports/{{ ds }}.parquet"]
            py_files = ["lib/a.py", "lib/b.py"]
            "#,
        );
        let argv = spark
            .argv(
                "spark-submit".into(),
                "nightly.aggregate",
                ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"),
                |text| Ok(text.replace("{{ ds }}", "2026-01-01")),
            )
            .expect("argv");
        assert_eq!(
            argv,
            [
                "spark-submit",
                "--master",
                "local[2]",
                "--name",
                "nightly.aggregate",
                "--py-files",
                "lib/a.py,lib/b.py",
                "--conf",
                "spark.driver.memory=1g",
                "--conf",
                "spark.sql.shuffle.partitions=4",
                "--conf",
                "spark.ui.enabled=false",
                "jobs/spark/agg.py",
                "--input",
                "exports/2026-01-01.parquet",
                "--data-interval-start",
                "2026-01-01T00:00:00+00:00",
                "--data-interval-end",
                "2026-01-02T00:00:00+00:00",
            ]
        );
    }

    #[test]
    fn spark_connect_and_no_interval() {
        let spark = step(
            r#"
            app = "agg.py"
            remote = "sc://spark:15002"
            interval_args = false
            "#,
        );
        let argv = spark
            .argv("spark-submit".into(), "j.s", ("a", "b"), |t| Ok(t.into()))
            .expect("argv");
        assert_eq!(
            argv,
            [
                "spark-submit",
                "--remote",
                "sc://spark:15002",
                "--name",
                "j.s",
                "agg.py"
            ]
        );
    }

    #[test]
    fn spark_home_names_the_program() {
        let spark = step(r#"app = "agg.py""#);
        let mut env = BTreeMap::new();
        assert_eq!(spark.submit_program(&env), "spark-submit");
        env.insert("SPARK_HOME".into(), "/opt/spark".into());
        assert_eq!(spark.submit_program(&env), "/opt/spark/bin/spark-submit");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error =
            toml::from_str::<SparkStep>("app = \"a.py\"\nmastr = \"local\"").expect_err("a typo");
        assert!(error.to_string().contains("mastr"), "{error}");
    }
}
