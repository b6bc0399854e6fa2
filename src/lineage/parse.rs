//! Column lineage of one query: parses it (`sqlparser`, in the warehouse's
//! dialect) and resolves every output column through CTEs, joins,
//! subqueries, aggregates, window functions, `CASE`, casts, `*` and `t.*`,
//! and `UNION` (by position), down to the columns of the tables it reads.
//!
//! Each output column gets the upstream columns it derives from and how:
//! [`How::Copied`] (a plain column, maybe renamed), [`How::Transformed`]
//! (an expression, cast or function of it), [`How::Aggregated`] (read
//! inside an aggregate). The columns read by `WHERE`, `JOIN ... ON` /
//! `USING`, `HAVING` and `QUALIFY` decide which rows the query has: they
//! are the query's [`QueryLineage::filters`].
//!
//! A table's columns come from a [`Catalog`]; a table it does not know
//! keeps `*` as a column of its own, and a name read from it is taken as
//! its column.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, SetOperator, Statement, TableAlias, TableFactor,
    TableWithJoins, WildcardAdditionalOptions,
};
use sqlparser::dialect::{
    Dialect as SqlDialect, DuckDbDialect, GenericDialect, MySqlDialect, PostgreSqlDialect,
    SQLiteDialect,
};
use sqlparser::parser::Parser;

use super::expr::{self, bare_column};
use super::scope::{Column, Derived, Edges, STAR, Scope, Source, merge, through};
use crate::core::error::{Error, Result};

/// How a column reaches another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// As it is, maybe under another name.
    Copied,
    /// Through an expression: a cast, a function, arithmetic, `CASE`.
    Transformed,
    /// Inside an aggregate (`sum`, `count`, `max`...).
    Aggregated,
    /// It decides which rows the query has (`WHERE`, `JOIN ... ON`,
    /// `HAVING`, `QUALIFY`), not a column's values.
    Filtered,
}

impl How {
    /// Its name: `copied`, `transformed`, `aggregated`, `filtered`.
    pub fn as_str(self) -> &'static str {
        match self {
            How::Copied => "copied",
            How::Transformed => "transformed",
            How::Aggregated => "aggregated",
            How::Filtered => "filtered",
        }
    }
}

/// A column of a table: `raw.orders` `amount`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnRef {
    /// The table as the query names it, normalised: unquoted names in
    /// lowercase, at most `schema.table`.
    pub relation: String,
    /// The column (`*`: the table's columns, unknown by name).
    pub column: String,
}

impl ColumnRef {
    /// `relation`.`column`.
    pub fn new(relation: &str, column: &str) -> ColumnRef {
        ColumnRef {
            relation: relation.to_string(),
            column: column.to_string(),
        }
    }
}

/// The SQL dialect a query is parsed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// DuckDB (the embedded warehouse, in-flight `sql` transforms).
    DuckDb,
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
    /// Anything else.
    Generic,
}

impl Dialect {
    fn parser(self) -> Box<dyn SqlDialect> {
        match self {
            Dialect::DuckDb => Box::new(DuckDbDialect {}),
            Dialect::Postgres => Box::new(PostgreSqlDialect {}),
            Dialect::MySql => Box::new(MySqlDialect {}),
            Dialect::Sqlite => Box::new(SQLiteDialect {}),
            Dialect::Generic => Box::new(GenericDialect {}),
        }
    }
}

/// The known columns of a table (by its normalised name), in order.
pub trait Catalog {
    /// `relation`'s columns, or `None` when unknown.
    fn columns(&self, relation: &str) -> Option<Vec<String>>;
}

impl<F: Fn(&str) -> Option<Vec<String>>> Catalog for F {
    fn columns(&self, relation: &str) -> Option<Vec<String>> {
        self(relation)
    }
}

/// One output column and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    /// Its name.
    pub name: String,
    /// The upstream columns it derives from, and how.
    pub from: BTreeMap<ColumnRef, How>,
}

/// The lineage of one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryLineage {
    /// Its output columns, in order.
    pub columns: Vec<OutputColumn>,
    /// The upstream columns that decide which rows it has.
    pub filters: BTreeSet<ColumnRef>,
    /// The tables it reads.
    pub relations: BTreeSet<String>,
}

/// The lineage of `sql`, a single query, in `dialect`.
pub fn lineage(sql: &str, dialect: Dialect, catalog: &dyn Catalog) -> Result<QueryLineage> {
    let statements = Parser::parse_sql(dialect.parser().as_ref(), sql)
        .map_err(|e| Error::Config(format!("the SQL does not parse: {e}")))?;
    let query = match statements.as_slice() {
        [Statement::Query(query)] => query,
        [] => return Err(Error::Config("the SQL holds no query".into())),
        [_] => return Err(Error::Config("the SQL is not a query (SELECT)".into())),
        _ => {
            return Err(Error::Config(format!(
                "the SQL holds {} statements where one query was expected",
                statements.len()
            )));
        }
    };
    let mut resolver = Resolver {
        catalog,
        dialect,
        relations: BTreeSet::new(),
    };
    let derived = resolver.query(query, &Vec::new(), None);
    Ok(QueryLineage {
        columns: derived
            .columns
            .into_iter()
            .map(|c| OutputColumn {
                name: c.name,
                from: c.from,
            })
            .collect(),
        filters: derived.filters,
        relations: resolver.relations,
    })
}

/// A name, normalised: unquoted names in lowercase.
pub fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// A table's name, normalised, at most `schema.table`.
pub fn relation_name(name: &ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(normalize)
        .collect();
    let keep = parts.len().saturating_sub(2);
    parts[keep..].join(".")
}

/// The CTEs in reach, innermost last.
type Ctes = Vec<(String, Derived)>;

struct Resolver<'c> {
    catalog: &'c dyn Catalog,
    dialect: Dialect,
    relations: BTreeSet<String>,
}

impl Resolver<'_> {
    fn query(&mut self, query: &Query, ctes: &Ctes, outer: Option<&Scope<'_>>) -> Derived {
        let mut reach = ctes.clone();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let mut derived = self.query(&cte.query, &reach, outer);
                derived.rename(&alias_columns(&cte.alias));
                reach.push((normalize(&cte.alias.name), derived));
            }
        }
        self.set_expr(&query.body, &reach, outer)
    }

    fn set_expr(&mut self, body: &SetExpr, ctes: &Ctes, outer: Option<&Scope<'_>>) -> Derived {
        match body {
            SetExpr::Select(select) => self.select(select, ctes, outer),
            SetExpr::Query(query) => self.query(query, ctes, outer),
            SetExpr::SetOperation {
                left, right, op, ..
            } => {
                let mut first = self.set_expr(left, ctes, outer);
                let second = self.set_expr(right, ctes, outer);
                match op {
                    // Rows of both: every branch gives each column, by position.
                    SetOperator::Union => {
                        for (column, other) in first.columns.iter_mut().zip(&second.columns) {
                            merge(&mut column.from, &other.from);
                        }
                    }
                    // Rows of the first, decided by the second.
                    _ => {
                        for column in &second.columns {
                            first.filters.extend(column.from.keys().cloned());
                        }
                    }
                }
                first.filters.extend(second.filters);
                first
            }
            SetExpr::Values(values) => Derived {
                columns: (1..=values.rows.first().map(|r| r.len()).unwrap_or(0))
                    .map(|n| Column {
                        name: format!("column{n}"),
                        from: Edges::new(),
                    })
                    .collect(),
                filters: BTreeSet::new(),
            },
            SetExpr::Table(table) => {
                let name = table.table_name.as_ref().map(normalize).unwrap_or_default();
                let relation = match &table.schema_name {
                    Some(schema) => format!("{}.{name}", normalize(schema)),
                    None => name.clone(),
                };
                let source = self.table(name, relation, ctes);
                Derived {
                    columns: source.columns,
                    filters: source.filters,
                }
            }
            _ => Derived::default(),
        }
    }

    /// A table (or CTE) by name.
    fn table(&mut self, alias: String, relation: String, ctes: &Ctes) -> Source {
        if !relation.contains('.')
            && let Some((_, derived)) = ctes.iter().rev().find(|(n, _)| *n == relation)
        {
            return Source::derived(alias, derived.clone());
        }
        self.relations.insert(relation.clone());
        let known = self.catalog.columns(&relation);
        Source::table(alias, relation, known)
    }

    fn select(&mut self, select: &Select, ctes: &Ctes, outer: Option<&Scope<'_>>) -> Derived {
        let mut scope = Scope::within(outer);
        let mut filters = BTreeSet::new();
        for from in &select.from {
            self.from(from, ctes, &mut scope, &mut filters);
        }
        for source in &scope.sources {
            filters.extend(source.filters.iter().cloned());
        }
        for condition in [&select.selection, &select.having, &select.qualify]
            .into_iter()
            .flatten()
        {
            let (edges, more) = self.expr(condition, ctes, &scope, &[]);
            filters.extend(edges.into_keys());
            filters.extend(more);
        }
        let mut columns: Vec<Column> = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let (from, more) = self.expr(e, ctes, &scope, &columns);
                    filters.extend(more);
                    columns.push(Column {
                        name: self.name_of(e),
                        from,
                    });
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let (from, more) = self.expr(expr, ctes, &scope, &columns);
                    filters.extend(more);
                    columns.push(Column {
                        name: alias.value.clone(),
                        from,
                    });
                }
                SelectItem::ExprWithAliases { expr, aliases } => {
                    let (from, more) = self.expr(expr, ctes, &scope, &columns);
                    filters.extend(more);
                    for alias in aliases {
                        columns.push(Column {
                            name: alias.value.clone(),
                            from: from.clone(),
                        });
                    }
                }
                SelectItem::Wildcard(options) => {
                    let mut seen_using = BTreeSet::new();
                    for source in &scope.sources {
                        let expanded = self.expand(source, options, ctes, &scope, &mut seen_using);
                        columns.extend(expanded);
                    }
                }
                SelectItem::QualifiedWildcard(kind, options) => {
                    let SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                        continue;
                    };
                    let qualifier = relation_name(name);
                    if let Some(source) = scope.source(&qualifier) {
                        let expanded =
                            self.expand(source, options, ctes, &scope, &mut BTreeSet::new());
                        columns.extend(expanded);
                    }
                }
            }
        }
        Derived { columns, filters }
    }

    /// The relations of one `FROM` item and its joins, into `scope`.
    fn from(
        &mut self,
        from: &TableWithJoins,
        ctes: &Ctes,
        scope: &mut Scope<'_>,
        filters: &mut BTreeSet<ColumnRef>,
    ) {
        self.factor(&from.relation, ctes, scope, filters);
        for join in &from.joins {
            self.factor(&join.relation, ctes, scope, filters);
            let constraint = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c)
                | JoinOperator::Semi(c)
                | JoinOperator::LeftSemi(c)
                | JoinOperator::RightSemi(c)
                | JoinOperator::Anti(c)
                | JoinOperator::LeftAnti(c)
                | JoinOperator::RightAnti(c)
                | JoinOperator::StraightJoin(c) => Some(c),
                JoinOperator::AsOf { constraint, .. } => Some(constraint),
                _ => None,
            };
            match constraint {
                Some(JoinConstraint::On(condition)) => {
                    let (edges, more) = self.expr(condition, ctes, scope, &[]);
                    filters.extend(edges.into_keys());
                    filters.extend(more);
                }
                Some(JoinConstraint::Using(names) | JoinConstraint::UsingAlias(names, _)) => {
                    for name in names {
                        let column = relation_name(name);
                        // The column of every side it joins.
                        for source in &scope.sources {
                            if let Some(edges) = source.lookup(&column) {
                                filters.extend(edges.into_keys());
                            }
                        }
                        scope.using.push(column);
                    }
                }
                _ => {}
            }
        }
    }

    fn factor(
        &mut self,
        factor: &TableFactor,
        ctes: &Ctes,
        scope: &mut Scope<'_>,
        filters: &mut BTreeSet<ColumnRef>,
    ) {
        let source = match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let relation = relation_name(name);
                let short = relation.rsplit('.').next().unwrap_or_default().to_string();
                let alias_name = alias.as_ref().map(|a| normalize(&a.name)).unwrap_or(short);
                let mut source = match args {
                    // A table function: its columns come from its arguments.
                    Some(args) => {
                        let mut from = Edges::new();
                        for arg in &args.args {
                            if let sqlparser::ast::FunctionArg::Unnamed(
                                sqlparser::ast::FunctionArgExpr::Expr(e),
                            ) = arg
                            {
                                let (edges, _) = self.expr(e, ctes, scope, &[]);
                                merge(&mut from, &through(&edges, How::Transformed));
                            }
                        }
                        let names = alias.as_ref().map(alias_columns).unwrap_or_default();
                        function_source(alias_name.clone(), &alias_name, names, from)
                    }
                    None => self.table(alias_name, relation, ctes),
                };
                if let Some(alias) = alias {
                    rename(&mut source, &alias_columns(alias));
                }
                source
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut derived = self.query(subquery, ctes, Some(scope));
                let name = alias
                    .as_ref()
                    .map(|a| normalize(&a.name))
                    .unwrap_or_default();
                if let Some(alias) = alias {
                    derived.rename(&alias_columns(alias));
                }
                Source::derived(name, derived)
            }
            TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                let mut from = Edges::new();
                for e in array_exprs {
                    let (edges, _) = self.expr(e, ctes, scope, &[]);
                    merge(&mut from, &through(&edges, How::Transformed));
                }
                let name = alias
                    .as_ref()
                    .map(|a| normalize(&a.name))
                    .unwrap_or_else(|| "unnest".into());
                let names = alias.as_ref().map(alias_columns).unwrap_or_default();
                function_source(name.clone(), &name, names, from)
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                let mut from = Edges::new();
                for arg in args {
                    if let sqlparser::ast::FunctionArg::Unnamed(
                        sqlparser::ast::FunctionArgExpr::Expr(e),
                    ) = arg
                    {
                        let (edges, _) = self.expr(e, ctes, scope, &[]);
                        merge(&mut from, &through(&edges, How::Transformed));
                    }
                }
                let function = relation_name(name);
                let alias_name = alias
                    .as_ref()
                    .map(|a| normalize(&a.name))
                    .unwrap_or(function);
                let names = alias.as_ref().map(alias_columns).unwrap_or_default();
                function_source(alias_name.clone(), &alias_name, names, from)
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.from(table_with_joins, ctes, scope, filters);
                return;
            }
            other => {
                let alias = table_alias(other).map(|a| normalize(&a.name));
                Source::opaque(alias.unwrap_or_default())
            }
        };
        scope.sources.push(source);
    }

    /// The columns `*` (or `t.*`) gives of `source`, with `EXCLUDE`,
    /// `REPLACE` and `RENAME` applied.
    fn expand(
        &mut self,
        source: &Source,
        options: &WildcardAdditionalOptions,
        ctes: &Ctes,
        scope: &Scope<'_>,
        seen_using: &mut BTreeSet<String>,
    ) -> Vec<Column> {
        let mut excluded: Vec<String> = Vec::new();
        if let Some(exclude) = &options.opt_exclude {
            match exclude {
                sqlparser::ast::ExcludeSelectItem::Single(name) => {
                    excluded.push(relation_name(name))
                }
                sqlparser::ast::ExcludeSelectItem::Multiple(names) => {
                    excluded.extend(names.iter().map(relation_name))
                }
            }
        }
        if let Some(except) = &options.opt_except {
            excluded.push(normalize(&except.first_element));
            excluded.extend(except.additional_elements.iter().map(normalize));
        }
        let mut columns = Vec::new();
        for column in &source.columns {
            let lower = column.name.to_ascii_lowercase();
            if excluded.contains(&lower) {
                continue;
            }
            if scope
                .using
                .iter()
                .any(|u| u.eq_ignore_ascii_case(&column.name))
                && !seen_using.insert(lower)
            {
                continue;
            }
            let mut column = column.clone();
            if let Some(replace) = &options.opt_replace
                && let Some(element) = replace
                    .items
                    .iter()
                    .find(|e| e.column_name.value.eq_ignore_ascii_case(&column.name))
            {
                let (from, _) = self.expr(&element.expr, ctes, scope, &[]);
                column.from = from;
            }
            if let Some(rename) = &options.opt_rename {
                let renames: Vec<&sqlparser::ast::IdentWithAlias> = match rename {
                    sqlparser::ast::RenameSelectItem::Single(one) => vec![one],
                    sqlparser::ast::RenameSelectItem::Multiple(many) => many.iter().collect(),
                };
                if let Some(r) = renames
                    .iter()
                    .find(|r| r.ident.value.eq_ignore_ascii_case(&column.name))
                {
                    column.name = r.alias.value.clone();
                }
            }
            columns.push(column);
        }
        if source.open && !source.columns.iter().any(|c| c.name == STAR) {
            // A table whose columns are unknown: `*` stays a star.
            if let Some(relation) = &source.relation {
                columns.push(Column {
                    name: STAR.into(),
                    from: Edges::from([(ColumnRef::new(relation, STAR), How::Copied)]),
                });
            }
        }
        columns
    }

    /// Where `e`'s value comes from, and the columns its subqueries filter
    /// on. `earlier`: the select's columns so far (DuckDB reads their
    /// aliases in later ones).
    fn expr(
        &mut self,
        e: &Expr,
        ctes: &Ctes,
        scope: &Scope<'_>,
        earlier: &[Column],
    ) -> (Edges, BTreeSet<ColumnRef>) {
        let bare = bare_column(e);
        let reads = expr::reads(e);
        let mut edges = Edges::new();
        let mut filters = BTreeSet::new();
        for reference in &reads.references {
            let how = match (bare, reference.aggregated) {
                (_, true) => How::Aggregated,
                (true, false) => How::Copied,
                (false, false) => How::Transformed,
            };
            let found = resolve(scope, &reference.parts).or_else(|| {
                let [name] = reference.parts.as_slice() else {
                    return None;
                };
                earlier
                    .iter()
                    .rev()
                    .find(|c| c.name.eq_ignore_ascii_case(&name.value))
                    .map(|c| c.from.clone())
            });
            if let Some(found) = found {
                merge(&mut edges, &through(&found, how));
            }
        }
        for subquery in &reads.subqueries {
            let derived = self.query(&subquery.query, ctes, Some(scope));
            let how = if subquery.aggregated {
                How::Aggregated
            } else {
                How::Transformed
            };
            for column in &derived.columns {
                merge(&mut edges, &through(&column.from, how));
            }
            filters.extend(derived.filters);
        }
        (edges, filters)
    }

    /// The name the warehouse gives an unnamed output column.
    fn name_of(&self, e: &Expr) -> String {
        match e {
            Expr::Identifier(ident) => ident.value.clone(),
            Expr::CompoundIdentifier(parts) => {
                parts.last().map(|p| p.value.clone()).unwrap_or_default()
            }
            Expr::Nested(inner) => self.name_of(inner),
            Expr::Cast { expr, .. } if self.dialect == Dialect::Postgres => self.name_of(expr),
            Expr::Function(f) if self.dialect == Dialect::Postgres => expr::function_name(f),
            _ if self.dialect == Dialect::Postgres => "?column?".into(),
            other => other.to_string(),
        }
    }
}

/// Resolves a column name of one, two or more parts.
fn resolve(scope: &Scope<'_>, parts: &[Ident]) -> Option<Edges> {
    match parts {
        [column] => scope.resolve(None, &column.value),
        [qualifier, column] => scope
            .resolve(Some(&normalize(qualifier)), &column.value)
            // A struct field: `address.city`.
            .or_else(|| scope.resolve(None, &qualifier.value)),
        [.., schema, table, column] => {
            let relation = format!("{}.{}", normalize(schema), normalize(table));
            scope
                .resolve(Some(&relation), &column.value)
                .or_else(|| scope.resolve(Some(&normalize(table)), &column.value))
                .or_else(|| resolve(scope, &parts[..2]))
        }
        [] => None,
    }
}

/// The column names an alias gives (`as t(a, b)`).
fn alias_columns(alias: &TableAlias) -> Vec<String> {
    alias.columns.iter().map(|c| c.name.value.clone()).collect()
}

/// Renames a source's columns by position.
fn rename(source: &mut Source, names: &[String]) {
    for (column, name) in source.columns.iter_mut().zip(names) {
        column.name = name.clone();
    }
}

/// A table function (`unnest(tags) as t(tag)`): each of its columns comes
/// from its arguments.
fn function_source(alias: String, default: &str, names: Vec<String>, from: Edges) -> Source {
    if from.is_empty() {
        return Source::opaque(alias);
    }
    let names = if names.is_empty() {
        vec![default.to_string()]
    } else {
        names
    };
    Source::derived(
        alias,
        Derived {
            columns: names
                .into_iter()
                .map(|name| Column {
                    name,
                    from: from.clone(),
                })
                .collect(),
            filters: BTreeSet::new(),
        },
    )
}

/// The alias of the table factors read as opaque.
fn table_alias(factor: &TableFactor) -> Option<&TableAlias> {
    match factor {
        TableFactor::TableFunction { alias, .. }
        | TableFactor::JsonTable { alias, .. }
        | TableFactor::Pivot { alias, .. }
        | TableFactor::Unpivot { alias, .. }
        | TableFactor::MatchRecognize { alias, .. } => alias.as_ref(),
        _ => None,
    }
}
