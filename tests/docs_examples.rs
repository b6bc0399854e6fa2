//! Every configuration example in the docs is checked by `flowline validate`.
//!
//! The test reads README.md and every `docs/*.md`, takes out each TOML
//! example, builds a project around it in a temporary folder and runs the
//! real binary on it.
//!
//! # What counts as an example
//!
//! - every fenced ```` ```toml ```` block;
//! - in ```` ```console ````, ```` ```sh ```` (`shell`, `bash`) blocks, every
//!   file a command writes whose name ends in `.toml`: `cat > F <<'EOF' ...
//!   EOF` (`cat >> F` appends), `printf '...' > F`, and in console blocks the
//!   output shown for `$ cat F`. Inside `for X in a b c; do ... done`, a
//!   file is written once per value, with `$X` replaced (in an unquoted
//!   heredoc's text too). Other files written the same way (CSV, NDJSON...)
//!   are kept as the session's data files.
//!
//! An example is a pipeline when it is written to `pipelines/...`, when its
//! first line is the comment `# pipelines/<name>.toml`, or when it has a
//! `[source]`; a job when it is written to `jobs/...`, when its first line is
//! `# jobs/<name>.toml`, or when it has `[[step]]`; it is `flowline.toml`
//! when it is written there, when its first line is `# flowline.toml`, or
//! when it has `[project]`, `[warehouse]`, `[state]`, `[connections.*]`,
//! `[pools]` or `[server]`. Anything else is a fragment of a pipeline.
//!
//! An unlabeled block that holds TOML (it parses, and has a `[table]` line)
//! fails the test: label it ```` ```toml ```` so that it is checked.
//!
//! # How an example is completed (the least that makes a project)
//!
//! 1. Files shown together are validated together. A pipeline written in a
//!    shell session is validated with the `flowline.toml` and data files the
//!    session wrote before it; a `flowline.toml` written in a session, with
//!    the pipelines written before it. A ```` ```toml ```` pipeline is
//!    validated with the `flowline.toml` example of its section (the part of
//!    the page under one heading): the nearest one above it, else the first
//!    one below.
//! 2. `flowline.toml` gets `[project] name = "docs"` when it has no
//!    `[project]`; a pipeline shown without one gets a file with just that.
//! 3. A fragment whose `[source]` has no `kind` continues the nearest example
//!    above it on the same page whose `[source]` has one (as rule 4
//!    completes it): it is merged into it. The fragment's top-level keys
//!    other than `description`, `mode`, `max_bad_rows` and the pipeline's
//!    tables are keys of `[source]`. `[source]`, and every table the fragment
//!    opens with a `[header]`, merges key by key; every other value, inline
//!    tables and arrays too, replaces the example's. With no such example
//!    above it, it gets `[source] kind = "file"` and a `[destination]`.
//! 4. A pipeline with a `[source] kind` but no `[destination]` gets
//!    `[destination] table = "docs.example"`, and `mode = "stream"` when its
//!    source is a stream source and it has no `mode`.
//! 5. A fragment that sets one key on several lines (`paginate = ...` four
//!    times) lists alternatives: each line is validated on its own.
//! 6. Every connection named by `connection` in `[source]`, `[destination]`
//!    or `[warehouse]` that `flowline.toml` lacks gets `[connections.<name>]`
//!    with a placeholder `url` of the scheme its user reads (`postgres://`,
//!    `mysql://`, `sqlite://`, `amqp://`, `kafka://`, `nats://`, `mqtt://`;
//!    PostgreSQL for a destination or the warehouse).
//! 7. Every `${VAR}` is set in the environment: when it is the whole `url` of
//!    a connection, a source, the warehouse or the state store, to that placeholder URL;
//!    otherwise to `docs-placeholder`.
//! 8. A `file` source whose `path` matches no file of the project gets an
//!    empty file at that path (`*` read as `example`, `?` as `x`).
//! 9. A job is validated with the files of its session, or with the
//!    `flowline.toml` of its section; every pipeline (`pipeline = "x"`) and
//!    job (`job = "x"`) its steps name that the project lacks gets a
//!    placeholder file, and every pool they name gets a `[pools]` entry.
//!
//! # Examples that are wrong on purpose
//!
//! An example that shows an error is marked by an HTML comment on the line
//! before its block (blank lines may come between):
//!
//! ```text
//! <!-- flowline:invalid expects "text of the error" -->
//! ```
//!
//! (`\"` and `\\` escape inside the quotes; `'...'` quotes work too.) A
//! marked example must fail `flowline validate` with the expected text in
//! its output, and the page must show that text after the block, before the
//! next heading. In a shell block the marker applies to every TOML file the
//! block writes. An unmarked example must validate; warnings do not count.
//!
//! Each failure names the page and line of the example, flowline's output
//! and the files as they were validated.
//!
//! # Model examples
//!
//! A ```` ```sql ```` block whose first line is `-- <path>.sql`, and a
//! ```` ```yaml ```` (`yml`) block whose first line is `# <path>.yml`, is a
//! file of a models project (`models/...`, `macros/...`, `tests/...`,
//! `seeds/...`, `dbt_project.yml`). The files of one page make one
//! project, on the embedded DuckDB warehouse: `flowline models compile`
//! must parse and compile every model of it (configs and data tests
//! checked, every `ref()` and `source()` found, no cycle).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::TestProject;
use regex::Regex;
use toml::{Table, Value};

/// The source kinds read by `flowline stream`.
const STREAM_KINDS: &[&str] = &["rabbitmq", "kafka", "nats", "mqtt", "webhook"];

/// The top-level keys and tables of a pipeline file.
const PIPELINE_KEYS: &[&str] = &[
    "description",
    "mode",
    "max_bad_rows",
    "source",
    "transform",
    "destination",
    "batch",
];

/// The tables of `flowline.toml`.
const PROJECT_KEYS: &[&str] = &[
    "project",
    "warehouse",
    "state",
    "connections",
    "pools",
    "server",
];

/// The languages of blocks that hold shell commands.
const SHELL_LANGS: &[&str] = &["console", "sh", "shell", "bash"];

/// The value every `${VAR}` that is not a URL gets.
const PLACEHOLDER: &str = "docs-placeholder";

/// The table every completed pipeline loads.
const PLACEHOLDER_TABLE: &str = "docs.example";

#[test]
fn every_config_example_in_the_docs_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    pages.extend(docs);

    let mut failures = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(root.join(page)).expect("read page");
        let report = check_page(page, &text);
        checked += report.examples;
        failures.extend(report.failures);
    }
    assert!(checked > 0, "no TOML example found in {}", pages.join(", "));
    eprintln!("{checked} doc examples checked, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {checked} doc examples fail (see tests/docs_examples.rs for the rules and the \
         <!-- flowline:invalid expects \"...\" --> marker):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_model_example_in_the_docs_compiles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let name = format!(
            "docs/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = std::fs::read_to_string(&path).expect("read page");
        let files = model_files(&text);
        if files.is_empty() {
            continue;
        }
        checked += files.len();
        if let Some(failure) = check_models(&name, &files) {
            failures.push(failure);
        }
    }
    assert!(checked > 0, "no model example found in docs/");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The model files a page shows: (page line, path, text).
fn model_files(page: &str) -> Vec<(usize, String, String)> {
    let mut problems = Vec::new();
    blocks(page, "page", &mut problems)
        .into_iter()
        .filter_map(|block| {
            let first = block.body.first()?.trim();
            let path = match block.lang.as_str() {
                "sql" => first.strip_prefix("--")?.trim(),
                "yaml" | "yml" => first.strip_prefix('#')?.trim(),
                _ => return None,
            };
            let known = ["models/", "macros/", "tests/", "seeds/", "snapshots/"]
                .iter()
                .any(|folder| path.starts_with(folder))
                || path == "dbt_project.yml";
            let kind = path.ends_with(".sql") || path.ends_with(".yml");
            (known && kind).then(|| (block.line, path.to_string(), block.body.join("\n") + "\n"))
        })
        .collect()
}

/// Compiles the models project a page's files make; the failure names the
/// page and flowline's output.
fn check_models(name: &str, files: &[(usize, String, String)]) -> Option<String> {
    let project = TestProject::new();
    for (_, path, text) in files {
        project.write(path, text);
    }
    let out = project.flowline(&["models", "compile"]);
    if out.status.success() {
        return None;
    }
    let lines: Vec<String> = files
        .iter()
        .map(|(line, path, _)| format!("{name}:{line}: {path}"))
        .collect();
    Some(format!(
        "the model examples of {name} do not compile:\n{}{}\nfiles:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        lines.join("\n")
    ))
}

/// The checker itself: a page with a good example, a broken one, a marked
/// one that is right, and two marked ones that are wrong.
#[test]
fn wrong_examples_and_wrong_markers_fail_naming_page_and_line() {
    let page = r#"# Synthetic

```toml
[source]
kind = "file"
path = "data/*.csv"
```

```toml
[source]
kind = "file"
path = "data/*.csv"

[destination]
table = "raw.x"
write = "upsert"
```

<!-- flowline:invalid expects "unknown variant \"upsert\"" -->
```toml
[destination]
table = "raw.x"
write = "upsert"
```

It fails with `unknown variant "upsert"`.

<!-- flowline:invalid expects "unknown variant" -->
```toml
[destination]
write = "merge"
primary_key = ["id"]
```

That validates: unknown variant is not what it shows.

<!-- flowline:invalid expects "needs primary_key" -->
```toml
[destination]
write = "merge"
```
"#;
    let report = check_page("synthetic.md", page);
    assert_eq!(report.examples, 5);
    let failures = report.failures.join("\n\n");
    assert_eq!(report.failures.len(), 3, "{failures}");
    assert!(
        report.failures[0].starts_with("synthetic.md:10: ")
            && report.failures[0].contains("does not validate")
            && report.failures[0].contains("unknown variant"),
        "{failures}"
    );
    assert!(
        report.failures[1].starts_with("synthetic.md:30: ")
            && report.failures[1].contains("is marked invalid but validates"),
        "{failures}"
    );
    assert!(
        report.failures[2].starts_with("synthetic.md:39: ")
            && report.failures[2].contains("does not show")
            && report.failures[2].contains("primary_key"),
        "{failures}"
    );
}

/// Shell sessions: heredocs, appends, `printf` and `cat` output are
/// examples; SQL heredocs and data files are not.
#[test]
fn shell_sessions_yield_the_toml_files_they_write() {
    let page = r#"# Session

```console
$ mkdir -p shop/pipelines && cd shop
$ printf '[project]\nname = "shop"\n' > flowline.toml
$ psql -q <<'EOF'
create table orders (id bigint);
EOF
$ cat > data/orders.csv <<'EOF'
id
1
EOF
$ cat > pipelines/orders.toml <<'EOF'
[source]
kind = "file"
path = "data/orders.csv"
EOF
$ cat >> flowline.toml <<'EOF'

[connections.app]
url = "${APP_URL}"
EOF
$ cat pipelines/orders.toml
[source]
kind = "file"
$ flowline validate
ok: shop is valid (1 pipeline)
```
"#;
    let mut problems = Vec::new();
    let blocks = blocks(page, "session.md", &mut problems);
    let examples = examples(&blocks, "session.md", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let found: Vec<(usize, Option<&str>)> = examples
        .iter()
        .map(|e| (e.line, e.path.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            (5, Some("flowline.toml")),
            (14, Some("pipelines/orders.toml")),
            (19, Some("flowline.toml")),
            (24, Some("pipelines/orders.toml")),
        ]
    );
    assert_eq!(examples[0].text, "[project]\nname = \"shop\"\n");
    assert_eq!(
        examples[1]
            .session
            .get("data/orders.csv")
            .map(String::as_str),
        Some("id\n1\n")
    );
    let appended = examples[2].full.as_deref().expect("the whole file");
    assert!(appended.starts_with("[project]") && appended.ends_with("url = \"${APP_URL}\"\n"));
    assert_eq!(examples[3].text, "[source]\nkind = \"file\"\n");
}

/// What checking one page found.
struct Report {
    /// Examples checked.
    examples: usize,
    /// One message per problem, each starting with `page:line: `.
    failures: Vec<String>,
}

/// Checks every example of `page` (named `name` in messages).
fn check_page(name: &str, page: &str) -> Report {
    let mut failures = Vec::new();
    let blocks = blocks(page, name, &mut failures);
    for block in &blocks {
        if block.lang.is_empty() && looks_like_toml(&block.body) {
            failures.push(format!(
                "{name}:{}: this unlabeled block holds TOML: label it ```toml so that it is checked",
                block.line
            ));
        }
    }
    let examples = examples(&blocks, name, &mut failures);
    for index in 0..examples.len() {
        if let Some(failure) = check_example(name, &examples, index) {
            failures.push(failure);
        }
    }
    Report {
        examples: examples.len(),
        failures,
    }
}

/// A fenced block of a page.
struct Block {
    /// The first word of its info string (`toml`, `console`, or empty).
    lang: String,
    /// The page line of its opening fence (1-based).
    line: usize,
    /// Its lines, without the fences.
    body: Vec<String>,
    /// Which part of the page (counted in headings) it is in.
    section: usize,
    /// The text the page expects it to fail with, if it is marked invalid.
    expects: Option<String>,
    /// The page text after it, up to the next heading.
    after: String,
}

/// The fenced blocks of `page`; bad markers are added to `problems`.
fn blocks(page: &str, name: &str, problems: &mut Vec<String>) -> Vec<Block> {
    let lines: Vec<&str> = page.lines().collect();
    let mut blocks = Vec::new();
    let mut section = 0;
    let mut pending: Option<(usize, String)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            let indent = line.len() - trimmed.len();
            let ticks = 3 + info.chars().take_while(|c| *c == '`').count();
            let fence = "`".repeat(ticks);
            let lang = info
                .trim_start_matches('`')
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            let open = i;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() {
                let t = lines[i].trim_start();
                if t.starts_with(&fence) && t.trim_start_matches('`').trim().is_empty() {
                    break;
                }
                body.push(strip_indent(lines[i], indent));
                i += 1;
            }
            blocks.push(Block {
                lang,
                line: open + 1,
                body,
                section,
                expects: pending.take().map(|(_, expects)| expects),
                after: text_until_heading(&lines[(i + 1).min(lines.len())..]),
            });
            i += 1;
            continue;
        }
        if trimmed.starts_with('#') {
            section += 1;
        }
        match parse_marker(line) {
            Some(Ok(expects)) => {
                if let Some((at, _)) = pending.replace((i + 1, expects)) {
                    problems.push(format!("{name}:{at}: marker not followed by a block"));
                }
            }
            Some(Err(e)) => problems.push(format!("{name}:{}: {e}", i + 1)),
            None if !line.trim().is_empty() => {
                if let Some((at, _)) = pending.take() {
                    problems.push(format!(
                        "{name}:{at}: marker not followed by a block (only blank lines may come between)"
                    ));
                }
            }
            None => {}
        }
        i += 1;
    }
    if let Some((at, _)) = pending {
        problems.push(format!("{name}:{at}: marker not followed by a block"));
    }
    blocks
}

/// `line` without up to `indent` leading spaces.
fn strip_indent(line: &str, indent: usize) -> String {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    line[spaces.min(indent)..].to_string()
}

/// The text of `lines` up to the first heading outside a fenced block.
fn text_until_heading(lines: &[&str]) -> String {
    let mut text = String::new();
    let mut fenced = false;
    for line in lines {
        if !fenced && line.starts_with('#') {
            break;
        }
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Reads `<!-- flowline:invalid expects "text" -->`: `None` when `line` is
/// no flowline marker, the expected text, or what is wrong with it.
fn parse_marker(line: &str) -> Option<Result<String, String>> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    let rest = inner.strip_prefix("flowline:")?;
    let usage = "write <!-- flowline:invalid expects \"error text\" -->";
    let Some(rest) = rest.strip_prefix("invalid") else {
        return Some(Err(format!("unknown marker {inner:?}: {usage}")));
    };
    let Some(quoted) = rest.trim().strip_prefix("expects") else {
        return Some(Err(format!(
            "marker {inner:?} needs the error text: {usage}"
        )));
    };
    let quoted = quoted.trim();
    let mut chars = quoted.chars();
    let parsed = match chars.next() {
        Some('\'') => quoted[1..]
            .strip_suffix('\'')
            .filter(|s| !s.contains('\''))
            .map(str::to_string),
        Some('"') => {
            let mut text = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => text.extend(chars.next()),
                    '"' => {
                        closed = chars.as_str().is_empty();
                        break;
                    }
                    c => text.push(c),
                }
            }
            closed.then_some(text)
        }
        _ => None,
    };
    Some(match parsed {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(format!(
            "marker {inner:?}: the error text must be one quoted string: {usage}"
        )),
    })
}

/// Whether an unlabeled block holds TOML with a `[table]`.
fn looks_like_toml(body: &[String]) -> bool {
    let header = Regex::new(r#"^\s*\[\[?[A-Za-z0-9_."-]+\]\]?\s*(#.*)?$"#).expect("regex");
    body.iter().any(|line| header.is_match(line)) && body.join("\n").parse::<Table>().is_ok()
}

/// One TOML example of a page.
#[derive(Clone, Debug)]
struct Example {
    /// The page line of its first line.
    line: usize,
    /// Where the page shows it, for messages.
    what: String,
    /// The file the page writes it to, or names in its first line.
    path: Option<String>,
    /// The TOML as the page shows it.
    text: String,
    /// For `cat >>`: the whole file once the text is appended.
    full: Option<String>,
    /// The files its shell session wrote before it (path -> contents).
    session: BTreeMap<String, String>,
    /// Which part of the page it is in.
    section: usize,
    /// Whether it comes from a shell session.
    shell: bool,
    /// The error text it must fail with, if it is marked invalid.
    expects: Option<String>,
    /// The page text after its block, up to the next heading.
    after: String,
}

/// The TOML examples of `blocks`.
fn examples(blocks: &[Block], name: &str, problems: &mut Vec<String>) -> Vec<Example> {
    let mut examples = Vec::new();
    for block in blocks {
        let found = if block.lang == "toml" {
            toml_block(block)
        } else if SHELL_LANGS.contains(&block.lang.as_str()) {
            shell_block(block)
        } else {
            Vec::new()
        };
        if found.is_empty() && block.expects.is_some() {
            problems.push(format!(
                "{name}:{}: marked invalid, but the block holds no TOML example",
                block.line
            ));
        }
        examples.extend(found);
    }
    examples
}

/// The example of a ```toml block: the whole block, or each line of a list
/// of alternatives.
fn toml_block(block: &Block) -> Vec<Example> {
    let text = format!("{}\n", block.body.join("\n"));
    let path_hint =
        Regex::new(r"^#\s*(flowline\.toml|(?:pipelines|jobs)/[A-Za-z0-9_.-]+\.toml)\s*$")
            .expect("regex");
    let path = block
        .body
        .iter()
        .find(|line| !line.trim().is_empty())
        .and_then(|line| path_hint.captures(line.trim()))
        .map(|c| c[1].to_string());
    let example = |line: usize, text: String, what: &str| Example {
        line,
        what: what.to_string(),
        path: path.clone(),
        text,
        full: None,
        session: BTreeMap::new(),
        section: block.section,
        shell: false,
        expects: block.expects.clone(),
        after: block.after.clone(),
    };
    if let Some(lines) = alternatives(&block.body) {
        return lines
            .into_iter()
            .map(|(index, line)| {
                example(
                    block.line + 1 + index,
                    format!("{line}\n"),
                    "alternative in a ```toml block",
                )
            })
            .collect();
    }
    vec![example(block.line + 1, text, "```toml block")]
}

/// The lines of a fragment that sets one key several times, one key per
/// line: (index, line) of each, or `None` when `body` is no such list.
fn alternatives(body: &[String]) -> Option<Vec<(usize, String)>> {
    if body.join("\n").parse::<Table>().is_ok() {
        return None;
    }
    let key = Regex::new(r"^([A-Za-z0-9_-]+)\s*=").expect("regex");
    let mut seen = BTreeSet::new();
    let mut repeated = false;
    let mut lines = Vec::new();
    for (index, line) in body.iter().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let name = key.captures(line)?[1].to_string();
        line.parse::<Table>().ok()?;
        repeated |= !seen.insert(name);
        lines.push((index, line.clone()));
    }
    repeated.then_some(lines)
}

/// The TOML files a shell session writes, in order.
fn shell_block(block: &Block) -> Vec<Example> {
    let console = block.lang == "console";
    let heredoc = Regex::new(r#"<<(-?)\s*(?:'(\w+)'|"(\w+)"|(\w+))"#).expect("regex");
    let redirect = Regex::new(r#"(>>?)\s*([^\s<>;&|'"]+)"#).expect("regex");
    let printf = Regex::new(r#"^printf\s+'([^']*)'\s*(>>?)\s*(\S+)\s*$"#).expect("regex");
    let cat = Regex::new(r"^cat\s+(\S+\.toml)\s*$").expect("regex");
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut examples = Vec::new();
    let body = &block.body;
    // The page line of body line `k`.
    let page_line = |k: usize| block.line + 1 + k;
    let mut write = |files: &mut BTreeMap<String, String>,
                     path: &str,
                     content: String,
                     append: bool,
                     line: usize,
                     what: String| {
        let Some(path) = project_path(path) else {
            return;
        };
        let before = files.clone();
        let whole = if append {
            format!("{}{content}", files.get(&path).cloned().unwrap_or_default())
        } else {
            content.clone()
        };
        files.insert(path.clone(), whole.clone());
        if path.ends_with(".toml") {
            examples.push(Example {
                line,
                what,
                path: Some(path),
                text: content,
                full: append.then_some(whole),
                session: before,
                section: block.section,
                shell: true,
                expects: block.expects.clone(),
                after: block.after.clone(),
            });
        }
    };
    // `for VAR in a b c; do` ... `done`: the variable and its values.
    let for_loop = Regex::new(r"^for\s+(\w+)\s+in\s+([^;]+);\s*do$").expect("regex");
    let mut looping: Option<(String, Vec<String>)> = None;
    let mut k = 0;
    while k < body.len() {
        // In a console block, commands follow `$ `, and go on over the
        // lines of a loop.
        let command = match body[k].strip_prefix("$ ") {
            Some(command) => command.trim(),
            None if !console || looping.is_some() => body[k].trim(),
            None => {
                k += 1;
                continue;
            }
        };
        let at = k;
        k += 1;
        if let Some(c) = for_loop.captures(command) {
            let values = c[2].split_whitespace().map(str::to_string).collect();
            looping = Some((c[1].to_string(), values));
            continue;
        }
        if command == "done" || command.starts_with("done;") {
            looping = None;
            continue;
        }
        // Each value of the loop around the command (one pass without one).
        let passes: Vec<Option<(&str, &str)>> = match &looping {
            Some((var, values)) => values
                .iter()
                .map(|v| Some((var.as_str(), v.as_str())))
                .collect(),
            None => vec![None],
        };
        if let Some(c) = heredoc.captures(command) {
            let strip_tabs = &c[1] == "-";
            let expands = c.get(4).is_some();
            let delimiter = c
                .get(2)
                .or(c.get(3))
                .or(c.get(4))
                .map_or("", |m| m.as_str());
            let start = k;
            let mut content = String::new();
            while k < body.len() {
                let line = if strip_tabs {
                    body[k].trim_start_matches('\t')
                } else {
                    body[k].as_str()
                };
                if line == delimiter {
                    break;
                }
                content.push_str(line);
                content.push('\n');
                k += 1;
            }
            k += 1;
            let target = command
                .starts_with("cat")
                .then(|| redirect.captures(command))
                .flatten();
            if let Some(target) = target {
                for pass in &passes {
                    let path = expand(&target[2], *pass);
                    let text = if expands {
                        expand(&content, *pass)
                    } else {
                        content.clone()
                    };
                    let what = match pass {
                        Some((var, value)) => format!(
                            "`cat {} {path}` in a ```{} block, with {var}={value}",
                            &target[1], block.lang
                        ),
                        None => format!("`cat {} {path}` in a ```{} block", &target[1], block.lang),
                    };
                    write(
                        &mut files,
                        &path,
                        text,
                        &target[1] == ">>",
                        page_line(start),
                        what,
                    );
                }
            }
            continue;
        }
        if let Some(c) = printf.captures(command) {
            for pass in &passes {
                let path = expand(&c[3], *pass);
                let what = format!("`printf ... {} {path}` in a ```{} block", &c[2], block.lang);
                write(
                    &mut files,
                    &path,
                    unescape_printf(&c[1]),
                    &c[2] == ">>",
                    page_line(at),
                    what,
                );
            }
            continue;
        }
        if console && let Some(c) = cat.captures(command) {
            let start = k;
            let mut content = String::new();
            while k < body.len() && !body[k].starts_with("$ ") {
                content.push_str(&body[k]);
                content.push('\n');
                k += 1;
            }
            let what = format!("the output of `cat {}` in a ```console block", &c[1]);
            write(&mut files, &c[1], content, false, page_line(start), what);
        }
    }
    examples
}

/// `text` with `$var` and `${var}` of a loop replaced by its value.
fn expand(text: &str, pass: Option<(&str, &str)>) -> String {
    match pass {
        Some((var, value)) => text
            .replace(&format!("${{{var}}}"), value)
            .replace(&format!("${var}"), value),
        None => text.to_string(),
    }
}

/// A path a session writes, relative to its project folder: `None` for one
/// outside it.
fn project_path(path: &str) -> Option<String> {
    let path = path.trim_start_matches("./");
    if path.starts_with('/') || path.starts_with('~') || path.contains('$') || path.is_empty() {
        return None;
    }
    if path == "flowline.toml" || path.ends_with("/flowline.toml") {
        return Some("flowline.toml".into());
    }
    for folder in ["pipelines/", "jobs/"] {
        if let Some(i) = path.find(folder)
            && (i == 0 || path[..i].ends_with('/'))
        {
            return Some(path[i..].to_string());
        }
    }
    Some(path.to_string())
}

/// The text `printf FORMAT` prints, for the escapes the docs use.
fn unescape_printf(format: &str) -> String {
    let mut text = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                text.push('\n');
                chars.next();
            }
            ('\\', Some('t')) => {
                text.push('\t');
                chars.next();
            }
            ('\\', Some('\\')) => {
                text.push('\\');
                chars.next();
            }
            ('%', Some('%')) => {
                text.push('%');
                chars.next();
            }
            (c, _) => text.push(c),
        }
    }
    text
}

/// Whether an example is a pipeline file, a job file or `flowline.toml`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Project,
    Pipeline,
    Job,
}

/// What `example` is (see the top of the file).
fn role(example: &Example) -> Role {
    match example.path.as_deref() {
        Some("flowline.toml") => Role::Project,
        Some(path) if path.starts_with("pipelines/") => Role::Pipeline,
        Some(path) if path.starts_with("jobs/") => Role::Job,
        _ => match example.text.parse::<Table>() {
            Ok(table) if !table.contains_key("source") && table.contains_key("step") => Role::Job,
            Ok(table)
                if !table.contains_key("source")
                    && PROJECT_KEYS.iter().any(|key| table.contains_key(*key)) =>
            {
                Role::Project
            }
            _ => Role::Pipeline,
        },
    }
}

/// Validates example `index` of `examples`; a failure message, if it fails.
fn check_example(name: &str, examples: &[Example], index: usize) -> Option<String> {
    let example = &examples[index];
    let files = project_for(name, examples, index);
    let (files, env) = complete(files);
    let project = TestProject::new();
    for (path, contents) in &files {
        project.write(path, contents);
    }
    let mut command = project.command(&["validate"]);
    command.envs(&env);
    let out = command.output().expect("run flowline validate");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let place = format!(
        "{name}:{}: {} ({})",
        example.line,
        example.path.as_deref().unwrap_or("example"),
        example.what
    );
    let shown = || {
        let mut text = String::from("  the project as validated:\n");
        for (path, contents) in &files {
            text.push_str(&format!("  --- {path}\n"));
            for line in contents.lines() {
                text.push_str(&format!("  | {line}\n"));
            }
        }
        if !env.is_empty() {
            let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!("  environment: {}\n", vars.join(" ")));
        }
        text
    };
    let indented = indent(&output);
    let failure = match &example.expects {
        None if out.status.success() => None,
        None => Some(format!(
            "{place} does not validate:\n{indented}\n{}",
            shown()
        )),
        Some(expected) => {
            if out.status.success() {
                Some(format!(
                    "{place} is marked invalid but validates (expected {expected:?}):\n{indented}\n{}",
                    shown()
                ))
            } else if !output.contains(expected.as_str()) {
                Some(format!(
                    "{place} fails, but not with the marker's {expected:?}:\n{indented}\n{}",
                    shown()
                ))
            } else if !squeeze(&example.after).contains(&squeeze(expected)) {
                Some(format!(
                    "{place}: the page does not show the marker's {expected:?} after the block \
                     (before the next heading); flowline says:\n{indented}"
                ))
            } else {
                None
            }
        }
    };
    let marked = if example.expects.is_some() {
        " (marked invalid)"
    } else {
        ""
    };
    let outcome = if failure.is_some() { "FAIL" } else { "ok  " };
    eprintln!("{outcome} {place}{marked}");
    failure
}

/// `text` indented for a failure message.
fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with every run of whitespace as one space.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The files of the project example `index` is validated in, before
/// completion (rules 1 to 5 of the top of the file).
fn project_for(name: &str, examples: &[Example], index: usize) -> BTreeMap<String, String> {
    let example = &examples[index];
    let text = example.full.clone().unwrap_or_else(|| example.text.clone());
    let mut files: BTreeMap<String, String> = example.session.clone();
    match role(example) {
        Role::Project => {
            files.insert("flowline.toml".into(), text);
        }
        Role::Job => {
            if !example.shell
                && let Some(project) = section_project(examples, index)
            {
                files.insert("flowline.toml".into(), project);
            }
            let path = example
                .path
                .clone()
                .unwrap_or_else(|| format!("jobs/{}_{}.toml", page_stem(name), example.line));
            files.insert(path, text);
        }
        Role::Pipeline => {
            // A pipeline of a session is validated without the others.
            files.retain(|path, _| !path.starts_with("pipelines/"));
            if !example.shell
                && let Some(project) = section_project(examples, index)
            {
                files.insert("flowline.toml".into(), project);
            }
            let path = example
                .path
                .clone()
                .unwrap_or_else(|| format!("pipelines/{}_{}.toml", page_stem(name), example.line));
            files.insert(path, complete_pipeline(&text, examples, index));
        }
    }
    files
}

/// A page's name as a file-name stem: `docs/jobs.md` -> `jobs`.
fn page_stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .unwrap_or_default()
}

/// The `flowline.toml` example of the section of ```toml example `index`:
/// the nearest one above it, else the first one below.
fn section_project(examples: &[Example], index: usize) -> Option<String> {
    let example = &examples[index];
    let candidates = |range: Vec<usize>| {
        range.into_iter().find(|&i| {
            let other = &examples[i];
            !other.shell
                && other.section == example.section
                && other.expects.is_none()
                && role(other) == Role::Project
        })
    };
    candidates((0..index).rev().collect())
        .or_else(|| candidates((index + 1..examples.len()).collect()))
        .map(|i| examples[i].text.clone())
}

/// The pipeline file for pipeline example `index` whose text is `text`
/// (rules 3 and 4).
fn complete_pipeline(text: &str, examples: &[Example], index: usize) -> String {
    let Ok(mut table) = text.parse::<Table>() else {
        return text.to_string(); // flowline reports the syntax error
    };
    if source_kind(&table).is_none() {
        let mut headers = header_paths(text);
        let bare: Vec<String> = table
            .keys()
            .filter(|key| !PIPELINE_KEYS.contains(&key.as_str()))
            .cloned()
            .collect();
        if !bare.is_empty() {
            let mut source = match table.remove("source") {
                Some(Value::Table(source)) => source,
                _ => Table::new(),
            };
            for key in bare {
                if let Some(value) = table.remove(&key) {
                    source.insert(key, value);
                }
            }
            table.insert("source".into(), Value::Table(source));
            headers.insert("source".into());
        }
        let mut base = context(examples, index).unwrap_or_else(|| {
            let mut base = Table::new();
            base.insert(
                "source".into(),
                Value::Table(table_of(&[("kind", "file"), ("path", "data/example.csv")])),
            );
            base.insert(
                "destination".into(),
                Value::Table(table_of(&[("table", PLACEHOLDER_TABLE)])),
            );
            base
        });
        merge(&mut base, table, "", &headers);
        return toml::to_string(&base).expect("TOML");
    }
    let mut text = text.to_string();
    if !table.contains_key("destination") {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n[destination]\ntable = \"{PLACEHOLDER_TABLE}\"\n"
        ));
        let stream = source_kind(&table).is_some_and(|kind| STREAM_KINDS.contains(&kind));
        if stream && !table.contains_key("mode") {
            text = format!("mode = \"stream\"\n{text}");
        }
    }
    text
}

/// The completed pipeline of the nearest example above `index` on its page
/// whose `[source]` has a `kind` (rule 3).
fn context(examples: &[Example], index: usize) -> Option<Table> {
    (0..index).rev().find_map(|i| {
        let other = &examples[i];
        let text = other.full.as_ref().unwrap_or(&other.text);
        let table = text.parse::<Table>().ok()?;
        if other.expects.is_some() || role(other) != Role::Pipeline || source_kind(&table).is_none()
        {
            return None;
        }
        complete_pipeline(text, examples, i).parse::<Table>().ok()
    })
}

/// `over` merged into `base`: a table whose dotted path (under `prefix`)
/// is in `headers`, or leads to one, merges key by key; every other value
/// (inline tables and arrays too) replaces the one in `base`.
fn merge(base: &mut Table, over: Table, prefix: &str, headers: &BTreeSet<String>) {
    for (key, value) in over {
        let path = format!("{prefix}{key}");
        let header = headers
            .iter()
            .any(|h| *h == path || h.starts_with(&format!("{path}.")));
        match (base.get_mut(&key), value) {
            (Some(Value::Table(base)), Value::Table(over)) if header => {
                merge(base, over, &format!("{path}."), headers)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The dotted paths of the `[table]` and `[[table]]` headers of `text`.
fn header_paths(text: &str) -> BTreeSet<String> {
    let header =
        Regex::new(r#"^\s*\[\[?\s*([A-Za-z0-9_."' -]+?)\s*\]\]?\s*(#.*)?$"#).expect("regex");
    text.lines()
        .filter_map(|line| header.captures(line))
        .map(|c| {
            c[1].split('.')
                .map(|part| part.trim().trim_matches(|q| q == '"' || q == '\''))
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect()
}

/// A table of string values.
fn table_of(pairs: &[(&str, &str)]) -> Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

/// `[source] kind` of a pipeline table.
fn source_kind(table: &Table) -> Option<&str> {
    table.get("source")?.get("kind")?.as_str()
}

/// A string value at a dotted path of a table.
fn string_at<'a>(table: &'a Table, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut current = table;
    for key in parents {
        current = current.get(*key)?.as_table()?;
    }
    current.get(*last)?.as_str()
}

/// The placeholder URL for a connection read by `user`: a source kind, or
/// `postgres` for a destination and the warehouse.
fn placeholder_url(user: &str) -> &'static str {
    match user {
        "postgres" => "postgres://docs:docs@127.0.0.1:5432/docs",
        "mysql" => "mysql://docs:docs@127.0.0.1:3306/docs",
        "sqlite" => "sqlite://docs.db",
        "rabbitmq" => "amqp://guest:guest@127.0.0.1:5672/%2f",
        "kafka" => "kafka://127.0.0.1:9092",
        "nats" => "nats://127.0.0.1:4222",
        "mqtt" => "mqtt://127.0.0.1:1883",
        _ => "https://docs.example/",
    }
}

/// A TOML key, quoted when it is not bare.
fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Rule 9: placeholder pipelines and jobs for those the project's jobs
/// name; returns the pools they name.
fn complete_jobs(files: &mut BTreeMap<String, String>) -> BTreeSet<String> {
    let jobs: Vec<Table> = files
        .iter()
        .filter(|(path, _)| path.starts_with("jobs/") && path.ends_with(".toml"))
        .filter_map(|(_, text)| text.parse::<Table>().ok())
        .collect();
    let mut pools = BTreeSet::new();
    for job in &jobs {
        let steps = job
            .get("step")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for step in steps {
            if let Some(pool) = step.get("pool").and_then(Value::as_str) {
                pools.insert(pool.to_string());
            }
            if let Some(name) = step.get("pipeline").and_then(Value::as_str) {
                files
                    .entry(format!("pipelines/{name}.toml"))
                    .or_insert_with(|| {
                        format!(
                            "[source]\nkind = \"file\"\npath = \"data/{name}.csv\"\n\n\
                             [destination]\ntable = \"raw.{name}\"\n"
                        )
                    });
                files.entry(format!("data/{name}.csv")).or_default();
            }
            if let Some(name) = step.get("job").and_then(Value::as_str) {
                files
                    .entry(format!("jobs/{name}.toml"))
                    .or_insert_with(|| "[[step]]\nname = \"s\"\ncommand = \"true\"\n".into());
            }
        }
    }
    pools
}

/// Completes a project (rules 2, 6, 7, 8 and 9): the files, and the
/// environment to validate them in.
fn complete(
    mut files: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let pools = complete_jobs(&mut files);
    let pipelines: Vec<Table> = files
        .iter()
        .filter(|(path, _)| path.starts_with("pipelines/") && path.ends_with(".toml"))
        .filter_map(|(_, text)| text.parse::<Table>().ok())
        .collect();

    // Who reads each connection, by name.
    let mut users: BTreeMap<String, String> = BTreeMap::new();
    for pipeline in &pipelines {
        if let (Some(kind), Some(name)) = (
            source_kind(pipeline),
            string_at(pipeline, &["source", "connection"]),
        ) {
            users.insert(name.to_string(), kind.to_string());
        }
        if let Some(name) = string_at(pipeline, &["destination", "connection"]) {
            users.insert(name.to_string(), "postgres".into());
        }
    }

    // Rules 2 and 6: [project], and the connections named.
    let mut project = match files.get("flowline.toml") {
        Some(text) => {
            let mut text = text.clone();
            if text
                .parse::<Table>()
                .is_ok_and(|t| !t.contains_key("project"))
            {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str("\n[project]\nname = \"docs\"\n");
            }
            text
        }
        None => "[project]\nname = \"docs\"\n".to_string(),
    };
    if let Ok(parsed) = project.parse::<Table>() {
        if let Some(name) = string_at(&parsed, &["warehouse", "connection"]) {
            users.insert(name.to_string(), "postgres".into());
        }
        let known: BTreeSet<String> = parsed
            .get("connections")
            .and_then(Value::as_table)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        for (name, user) in &users {
            if !known.contains(name) {
                project.push_str(&format!(
                    "\n[connections.{}]\nurl = \"{}\"\n",
                    toml_key(name),
                    placeholder_url(user)
                ));
            }
        }
    }
    if let Ok(parsed) = project.parse::<Table>() {
        let known = parsed.get("pools").and_then(Value::as_table);
        let missing: Vec<&String> = pools
            .iter()
            .filter(|pool| !known.is_some_and(|k| k.contains_key(pool.as_str())))
            .collect();
        if !missing.is_empty() && known.is_none() {
            project.push_str("\n[pools]\n");
            for pool in missing {
                project.push_str(&format!("{} = 2\n", toml_key(pool)));
            }
        }
    }
    files.insert("flowline.toml".into(), project.clone());

    // Rule 8: a file for each file source's path.
    for pipeline in &pipelines {
        if source_kind(pipeline) != Some("file") {
            continue;
        }
        let Some(path) = string_at(pipeline, &["source", "path"]) else {
            continue;
        };
        if path.contains("${") || path.starts_with('/') {
            continue;
        }
        let Ok(pattern) = glob::Pattern::new(path) else {
            continue;
        };
        if !files.keys().any(|file| pattern.matches(file)) {
            let file = path
                .replace("**", "example")
                .replace('*', "example")
                .replace('?', "x");
            files.insert(file, String::new());
        }
    }

    // Rule 7: ${VAR}.
    let whole = Regex::new(r"^\$\{([A-Za-z0-9_]+)\}$").expect("regex");
    let mut urls: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut url_var = |value: Option<&str>, user: &str| {
        if let Some(c) = value.and_then(|v| whole.captures(v)) {
            urls.insert(c[1].to_string(), placeholder_url(user));
        }
    };
    let project_table = project.parse::<Table>().unwrap_or_default();
    if let Some(connections) = project_table.get("connections").and_then(Value::as_table) {
        for (name, connection) in connections {
            let user = users.get(name).map_or("postgres", String::as_str);
            url_var(connection.get("url").and_then(Value::as_str), user);
        }
    }
    url_var(string_at(&project_table, &["warehouse", "url"]), "postgres");
    url_var(string_at(&project_table, &["state", "url"]), "postgres");
    for pipeline in &pipelines {
        if let Some(kind) = source_kind(pipeline) {
            url_var(string_at(pipeline, &["source", "url"]), kind);
        }
    }
    let var = Regex::new(r"\$\{([A-Za-z0-9_]+)\}").expect("regex");
    let mut env = BTreeMap::new();
    for (path, text) in &files {
        if !path.ends_with(".toml") {
            continue;
        }
        for c in var.captures_iter(text) {
            let start = c.get(0).map_or(0, |m| m.start());
            if text[..start].ends_with('$') {
                continue; // `$${` is a literal `${`
            }
            let name = c[1].to_string();
            let value = urls.get(&name).copied().unwrap_or(PLACEHOLDER);
            env.insert(name, value.to_string());
        }
    }
    (files, env)
}
