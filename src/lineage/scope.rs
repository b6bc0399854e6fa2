//! What a query's names can see: the relations of its `FROM` (tables,
//! CTEs, subqueries), each with the columns it offers and where each
//! column comes from, and the scope around it (for correlated subqueries).

use std::collections::{BTreeMap, BTreeSet};

use super::parse::{ColumnRef, How};

/// Where one column comes from: upstream columns and how each reaches it.
pub type Edges = BTreeMap<ColumnRef, How>;

/// The column name standing for columns lineage does not know by name.
pub const STAR: &str = "*";

/// Adds `from` to `into`, keeping the strongest kind per upstream column.
pub fn merge(into: &mut Edges, from: &Edges) {
    for (column, how) in from {
        let entry = into.entry(column.clone()).or_insert(*how);
        *entry = (*entry).max(*how);
    }
}

/// `edges` seen through one more step of kind `how`.
pub fn through(edges: &Edges, how: How) -> Edges {
    edges
        .iter()
        .map(|(c, h)| (c.clone(), (*h).max(how)))
        .collect()
}

/// One column a relation offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name (`*` for the unknown columns of a table).
    pub name: String,
    /// Where it comes from.
    pub from: Edges,
}

/// What a query (or CTE, or subquery) gives: its columns, and the upstream
/// columns its `WHERE`, `JOIN ... ON`, `HAVING` and `QUALIFY` read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Derived {
    /// Its output columns, in order.
    pub columns: Vec<Column>,
    /// The upstream columns that decide which rows it has.
    pub filters: BTreeSet<ColumnRef>,
}

impl Derived {
    /// Renames its columns by position (`with t(a, b) as ...`).
    pub fn rename(&mut self, names: &[String]) {
        for (column, name) in self.columns.iter_mut().zip(names) {
            column.name = name.clone();
        }
    }
}

/// One relation of a `FROM`.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name a qualifier uses: its alias, else its table's name.
    pub alias: String,
    /// The table it is, when it is one (`raw.orders`).
    pub relation: Option<String>,
    /// Its known columns.
    pub columns: Vec<Column>,
    /// Whether it may have columns beyond those (a table whose columns are
    /// not known): a name not found among them is read as its column.
    pub open: bool,
    /// The upstream columns that decide its rows (CTEs, subqueries).
    pub filters: BTreeSet<ColumnRef>,
}

impl Source {
    /// A table, with its columns when known.
    pub fn table(alias: String, relation: String, known: Option<Vec<String>>) -> Source {
        let open = known.as_ref().is_none_or(|c| c.iter().any(|c| c == STAR));
        let columns = known
            .unwrap_or_default()
            .into_iter()
            .map(|name| Column {
                from: Edges::from([(ColumnRef::new(&relation, &name), How::Copied)]),
                name,
            })
            .collect();
        Source {
            alias,
            relation: Some(relation),
            columns,
            open,
            filters: BTreeSet::new(),
        }
    }

    /// A CTE or subquery.
    pub fn derived(alias: String, derived: Derived) -> Source {
        let open = derived.columns.iter().any(|c| c.name == STAR);
        Source {
            alias,
            relation: None,
            columns: derived.columns,
            open,
            filters: derived.filters,
        }
    }

    /// A relation lineage cannot see into (a table function over no
    /// columns, a PIVOT): its columns come from nothing known.
    pub fn opaque(alias: String) -> Source {
        Source {
            alias,
            relation: None,
            columns: Vec::new(),
            open: false,
            filters: BTreeSet::new(),
        }
    }

    /// Where its column `name` comes from, if it has one.
    pub fn lookup(&self, name: &str) -> Option<Edges> {
        if let Some(column) = self
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
        {
            return Some(column.from.clone());
        }
        if !self.open {
            return None;
        }
        // A column behind a star: the star's upstream tables, by this name.
        if let Some(star) = self.columns.iter().find(|c| c.name == STAR) {
            return Some(
                star.from
                    .iter()
                    .map(|(c, h)| {
                        let column = if c.column == STAR { name } else { &c.column };
                        (ColumnRef::new(&c.relation, column), *h)
                    })
                    .collect(),
            );
        }
        let relation = self.relation.as_ref()?;
        Some(Edges::from([(ColumnRef::new(relation, name), How::Copied)]))
    }

    /// Whether `qualifier` (`o`, `orders`, `raw.orders`) names it.
    pub fn answers_to(&self, qualifier: &str) -> bool {
        self.alias.eq_ignore_ascii_case(qualifier)
            || self
                .relation
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(qualifier))
    }
}

/// The relations of one `SELECT`'s `FROM`, inside the scope around it.
#[derive(Debug, Default)]
pub struct Scope<'p> {
    /// In `FROM` order.
    pub sources: Vec<Source>,
    /// Columns named in `JOIN ... USING`, which `*` shows once.
    pub using: Vec<String>,
    /// The enclosing query's scope.
    pub parent: Option<&'p Scope<'p>>,
}

impl<'p> Scope<'p> {
    /// An empty scope inside `parent`.
    pub fn within(parent: Option<&'p Scope<'p>>) -> Scope<'p> {
        Scope {
            sources: Vec::new(),
            using: Vec::new(),
            parent,
        }
    }

    /// Where `column`, qualified by `qualifier` or not, comes from. An
    /// unqualified name that no source knows goes to every source that may
    /// hold it (tables whose columns are unknown), then to the outer scope.
    pub fn resolve(&self, qualifier: Option<&str>, column: &str) -> Option<Edges> {
        if let Some(qualifier) = qualifier {
            if let Some(found) = self
                .sources
                .iter()
                .filter(|s| s.answers_to(qualifier))
                .find_map(|s| s.lookup(column))
            {
                return Some(found);
            }
            return self.parent?.resolve(Some(qualifier), column);
        }
        let known = self.sources.iter().find_map(|s| {
            s.columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(column))
                .map(|c| c.from.clone())
        });
        if known.is_some() {
            return known;
        }
        let mut open = Edges::new();
        for source in self.sources.iter().filter(|s| s.open) {
            if let Some(edges) = source.lookup(column) {
                merge(&mut open, &edges);
            }
        }
        if !open.is_empty() {
            return Some(open);
        }
        self.parent?.resolve(None, column)
    }

    /// The source `qualifier` names, for `t.*`.
    pub fn source(&self, qualifier: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.answers_to(qualifier))
    }
}
