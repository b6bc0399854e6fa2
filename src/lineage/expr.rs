//! One SQL expression taken apart for lineage: the column names it reads,
//! each marked as read inside an aggregate or not, and the subqueries it
//! holds (resolved on their own by the caller).

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Function, Ident, InTarget, Query, Visit, Visitor, WindowType};

/// A column name an expression reads.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The name's parts: `amount`, `o.amount`, `raw.orders.amount`.
    pub parts: Vec<Ident>,
    /// Whether it is read inside an aggregate (`sum(amount)`).
    pub aggregated: bool,
}

/// A subquery an expression holds (`(select max(x) from t)`, `exists
/// (...)`, `x in (select ...)`).
#[derive(Debug, Clone)]
pub struct Subquery {
    /// The query.
    pub query: Box<Query>,
    /// Whether it sits inside an aggregate.
    pub aggregated: bool,
}

/// What an expression reads.
#[derive(Debug, Default)]
pub struct Reads {
    /// Its column names, in order.
    pub references: Vec<Reference>,
    /// Its subqueries.
    pub subqueries: Vec<Subquery>,
}

/// The columns and subqueries `expr` reads.
pub fn reads(expr: &Expr) -> Reads {
    let mut walk = Walk::default();
    let _ = expr.visit(&mut walk);
    walk.reads
}

/// Whether `expr` is a bare column name (in parentheses or not).
pub fn bare_column(expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Nested(inner) => bare_column(inner),
        _ => false,
    }
}

/// Whether a function of this name aggregates rows.
pub fn is_aggregate(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "sum",
        "count",
        "count_if",
        "countif",
        "avg",
        "mean",
        "min",
        "max",
        "any_value",
        "arbitrary",
        "first",
        "last",
        "arg_max",
        "arg_min",
        "argmax",
        "argmin",
        "max_by",
        "min_by",
        "string_agg",
        "group_concat",
        "listagg",
        "array_agg",
        "list",
        "json_agg",
        "jsonb_agg",
        "json_group_array",
        "json_object_agg",
        "median",
        "mode",
        "product",
        "bool_and",
        "bool_or",
        "bit_and",
        "bit_or",
        "bit_xor",
        "every",
        "histogram",
        "entropy",
        "kurtosis",
        "skewness",
        "corr",
        "fsum",
        "favg",
        "sumkahan",
        "geomean",
        "approx_count_distinct",
        "percentile_cont",
        "percentile_disc",
    ];
    const PREFIXES: &[&str] = &[
        "stddev",
        "var_",
        "variance",
        "covar",
        "regr_",
        "quantile",
        "approx_quantile",
    ];
    let name = name.to_ascii_lowercase();
    NAMES.contains(&name.as_str()) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The last part of a function's name, lowercase.
pub fn function_name(function: &Function) -> String {
    function
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

/// What entering a node did, undone when leaving it.
#[derive(Debug, Clone, Copy)]
enum Entered {
    Nothing,
    Aggregate,
    /// A window's `PARTITION BY` / `ORDER BY` expression: read as it is,
    /// even inside an aggregate window function; holds the depth before.
    Plain(usize),
}

#[derive(Debug, Default)]
struct Walk {
    reads: Reads,
    /// How many aggregates the walk is inside.
    aggregates: usize,
    /// How many queries (subqueries) the walk is inside: their names are
    /// theirs, not this expression's.
    queries: usize,
    /// The window expressions met so far, by address.
    window_parts: HashSet<*const Expr>,
    entered: Vec<Entered>,
}

impl Visitor for Walk {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.queries += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.queries = self.queries.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.queries > 0 {
            self.entered.push(Entered::Nothing);
            return ControlFlow::Continue(());
        }
        let mut entered = Entered::Nothing;
        if self.window_parts.contains(&(expr as *const Expr)) {
            entered = Entered::Plain(self.aggregates);
            self.aggregates = 0;
        }
        let aggregated = self.aggregates > 0;
        match expr {
            Expr::Identifier(ident) => self.reads.references.push(Reference {
                parts: vec![ident.clone()],
                aggregated,
            }),
            Expr::CompoundIdentifier(parts) => self.reads.references.push(Reference {
                parts: parts.clone(),
                aggregated,
            }),
            Expr::Subquery(query)
            | Expr::Exists {
                subquery: query, ..
            }
            | Expr::In {
                target: InTarget::Subquery(query),
                ..
            } => self.reads.subqueries.push(Subquery {
                query: query.clone(),
                aggregated,
            }),
            Expr::Function(function) => {
                if let Some(WindowType::WindowSpec(spec)) = &function.over {
                    for part in &spec.partition_by {
                        self.window_parts.insert(part as *const Expr);
                    }
                    for order in &spec.order_by {
                        self.window_parts.insert(&order.expr as *const Expr);
                    }
                }
                if is_aggregate(&function_name(function)) && matches!(entered, Entered::Nothing) {
                    self.aggregates += 1;
                    entered = Entered::Aggregate;
                }
            }
            _ => {}
        }
        self.entered.push(entered);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        match self.entered.pop() {
            Some(Entered::Aggregate) => self.aggregates = self.aggregates.saturating_sub(1),
            Some(Entered::Plain(depth)) => self.aggregates = depth,
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
