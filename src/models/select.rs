//! dbt's node selection syntax: `orders`, `orders+`, `+orders`,
//! `2+orders+1`, `@orders`, `tag:daily`, `path:models/marts`,
//! `config.materialized:table`, `resource_type:snapshot`, `marts.finance`
//! (folders) and `stg_*` (wildcards). Space-separated selectors (or
//! several `-s`) are a union, comma-separated ones an intersection;
//! `--exclude` takes the same syntax.

use std::collections::BTreeSet;
use std::path::Path;

use super::project::ModelProject;

/// One selector with its graph operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `@`: the selected models, their descendants, and all their ancestors.
    pub at: bool,
    /// `+` before: ancestors, to this depth (`None`: all).
    pub parents: Option<Option<usize>>,
    /// `+` after: descendants, to this depth (`None`: all).
    pub children: Option<Option<usize>>,
    /// What it matches.
    pub method: Method,
}

/// How a selector matches models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A model name, a folder or dotted path (`marts.finance`), with `*`.
    Fqn(String),
    /// `tag:name`.
    Tag(String),
    /// `path:models/marts` or `path:models/marts/orders.sql`.
    Path(String),
    /// `config.materialized:table` (materialized, schema, alias, tags).
    Config(String, String),
    /// `resource_type:model` or `resource_type:snapshot`.
    ResourceType(String),
}

/// Parses one selector (no spaces or commas).
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    let mut rest = text.trim();
    let at = rest.starts_with('@');
    if at {
        rest = &rest[1..];
    }
    let (parents, after) = leading_plus(rest);
    rest = after;
    let (children, before) = trailing_plus(rest);
    rest = before;
    if rest.is_empty() {
        return Err(format!(
            "selector '{text}' selects nothing: name a model, tag:, path:"
        ));
    }
    if at && (parents.is_some() || children.is_some()) {
        return Err(format!("selector '{text}': @ cannot be combined with +"));
    }
    let method = match rest.split_once(':') {
        None => Method::Fqn(rest.to_string()),
        Some(("tag", tag)) => Method::Tag(tag.to_string()),
        Some(("path", path)) => Method::Path(path.trim_end_matches('/').to_string()),
        Some(("resource_type", kind @ ("model" | "snapshot"))) => {
            Method::ResourceType(kind.to_string())
        }
        Some(("resource_type", other)) => {
            return Err(format!(
                "selector '{text}': resource_type:{other} is not one of model, snapshot"
            ));
        }
        Some((key, value)) if key.starts_with("config.") => {
            Method::Config(key["config.".len()..].to_string(), value.to_string())
        }
        Some((method, _)) => {
            return Err(format!(
                "selector '{text}': unknown method {method}: (use tag:, path:, resource_type: or config.<name>:)"
            ));
        }
    };
    Ok(Selector {
        at,
        parents,
        children,
        method,
    })
}

fn leading_plus(text: &str) -> (Option<Option<usize>>, &str) {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    match text[digits..].strip_prefix('+') {
        Some(rest) => (Some(text[..digits].parse().ok()), rest),
        None => (None, text),
    }
}

fn trailing_plus(text: &str) -> (Option<Option<usize>>, &str) {
    let digits = text.chars().rev().take_while(char::is_ascii_digit).count();
    let body = &text[..text.len() - digits];
    match body.strip_suffix('+') {
        Some(rest) => (Some(text[text.len() - digits..].parse().ok()), rest),
        None => (None, text),
    }
}

/// A whole selection: a union of intersections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    groups: Vec<Vec<Selector>>,
}

impl Selection {
    /// Parses the values of `-s` (or `--exclude`), each possibly holding
    /// several space-separated selectors.
    pub fn parse(values: &[String]) -> Result<Selection, String> {
        let mut groups = Vec::new();
        for value in values {
            for word in value.split_whitespace() {
                let group = word
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(parse_selector)
                    .collect::<Result<Vec<_>, _>>()?;
                if !group.is_empty() {
                    groups.push(group);
                }
            }
        }
        Ok(Selection { groups })
    }

    /// Whether it selects nothing at all (no selector given).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The models it selects.
    pub fn select(&self, project: &ModelProject) -> BTreeSet<usize> {
        let mut selected = BTreeSet::new();
        for group in &self.groups {
            let mut sets = group.iter().map(|s| apply(s, project));
            let Some(first) = sets.next() else { continue };
            let both = sets.fold(first, |acc, set| acc.intersection(&set).copied().collect());
            selected.extend(both);
        }
        selected
    }
}

/// The models `-s select --exclude exclude` picks; all when `select` is empty.
pub fn choose(project: &ModelProject, select: &Selection, exclude: &Selection) -> BTreeSet<usize> {
    let chosen: BTreeSet<usize> = if select.is_empty() {
        (0..project.models.len()).collect()
    } else {
        select.select(project)
    };
    let excluded = exclude.select(project);
    chosen.difference(&excluded).copied().collect()
}

fn apply(selector: &Selector, project: &ModelProject) -> BTreeSet<usize> {
    let matched: BTreeSet<usize> = (0..project.models.len())
        .filter(|&i| matches(&selector.method, project, i))
        .collect();
    let mut all = matched.clone();
    let graph = &project.graph;
    for &i in &matched {
        if selector.at {
            let below = graph.descendants(i, None);
            for &d in below.iter().chain([&i]) {
                all.extend(graph.ancestors(d, None));
            }
            all.extend(below);
        }
        if let Some(depth) = selector.parents {
            all.extend(graph.ancestors(i, depth));
        }
        if let Some(depth) = selector.children {
            all.extend(graph.descendants(i, depth));
        }
    }
    all
}

fn matches(method: &Method, project: &ModelProject, i: usize) -> bool {
    let model = &project.models[i];
    match method {
        Method::Tag(tag) => model.config.tags.iter().any(|t| t == tag),
        Method::ResourceType(kind) => {
            let snapshot = model.config.materialized == super::config::Materialized::Snapshot;
            snapshot == (kind == "snapshot")
        }
        Method::Path(path) => {
            let wanted = Path::new(path);
            model.file.starts_with(wanted) || model.file == wanted
        }
        Method::Config(key, value) => match key.as_str() {
            "materialized" => model.config.materialized.to_string() == *value,
            "schema" => model.config.schema.as_deref() == Some(value),
            "alias" => model.config.alias.as_deref() == Some(value),
            "tags" => model.config.tags.iter().any(|t| t == value),
            "incremental_strategy" => model.config.incremental_strategy.to_string() == *value,
            _ => false,
        },
        Method::Fqn(pattern) => {
            let parts: Vec<&str> = pattern.split('.').collect();
            let fqn = model.fqn(&project.layout.name);
            if parts.len() == 1 && glob(parts[0], &model.name) {
                return true;
            }
            // A prefix of the dotted name, from the project or below it.
            [0, 1].iter().any(|&from| {
                fqn.len() >= from + parts.len()
                    && parts.iter().zip(&fqn[from..]).all(|(p, f)| glob(p, f))
            })
        }
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any characters.
fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let pieces: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (n, piece) in pieces.iter().enumerate() {
        if n == 0 {
            match rest.strip_prefix(piece) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if n == pieces.len() - 1 {
            return rest.ends_with(piece);
        } else {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_operators_with_and_without_depth() {
        let s = parse_selector("orders+").expect("ok");
        assert_eq!((s.parents, s.children), (None, Some(None)));
        let s = parse_selector("+orders").expect("ok");
        assert_eq!((s.parents, s.children), (Some(None), None));
        let s = parse_selector("2+orders+1").expect("ok");
        assert_eq!((s.parents, s.children), (Some(Some(2)), Some(Some(1))));
        assert_eq!(s.method, Method::Fqn("orders".into()));
        let s = parse_selector("@orders").expect("ok");
        assert!(s.at);
    }

    #[test]
    fn methods() {
        assert_eq!(
            parse_selector("tag:daily").expect("ok").method,
            Method::Tag("daily".into())
        );
        assert_eq!(
            parse_selector("+path:models/marts/").expect("ok").method,
            Method::Path("models/marts".into())
        );
        assert_eq!(
            parse_selector("config.materialized:table")
                .expect("ok")
                .method,
            Method::Config("materialized".into(), "table".into())
        );
        assert!(
            parse_selector("colour:red")
                .expect_err("bad")
                .contains("unknown method colour")
        );
        assert!(parse_selector("+").is_err());
    }

    #[test]
    fn spaces_are_unions_and_commas_intersections() {
        let s = Selection::parse(&["a b,tag:x".into(), "c".into()]).expect("ok");
        assert_eq!(s.groups.len(), 3);
        assert_eq!(s.groups[1].len(), 2);
    }

    #[test]
    fn wildcards() {
        assert!(glob("stg_*", "stg_orders"));
        assert!(glob("*_orders", "stg_orders"));
        assert!(glob("s*_o*s", "stg_orders"));
        assert!(!glob("stg_*", "orders"));
        assert!(glob("orders", "orders"));
    }
}
