//! Column edges of one query, shape by shape.

use super::parse::{ColumnRef, Dialect, QueryLineage, lineage};

/// The tables the queries read, with their columns.
fn catalog(relation: &str) -> Option<Vec<String>> {
    let columns: &[&str] = match relation {
        "raw.orders" => &["id", "customer_id", "amount", "status", "created_at"],
        "raw.customers" => &["id", "name", "country"],
        "raw.events" => &["id", "tags", "payload"],
        "main.stg_orders" | "stg_orders" => &["id", "customer_id", "amount", "status"],
        _ => return None,
    };
    Some(columns.iter().map(|c| c.to_string()).collect())
}

fn run(sql: &str) -> QueryLineage {
    run_in(sql, Dialect::DuckDb)
}

fn run_in(sql: &str, dialect: Dialect) -> QueryLineage {
    lineage(sql, dialect, &catalog).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The output columns' names.
fn names(l: &QueryLineage) -> Vec<&str> {
    l.columns.iter().map(|c| c.name.as_str()).collect()
}

/// Column `name`'s edges as `relation.column how`, sorted.
fn edges(l: &QueryLineage, name: &str) -> Vec<String> {
    let column = l
        .columns
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", names(l)));
    column
        .from
        .iter()
        .map(|(c, how)| format!("{}.{} {}", c.relation, c.column, how.as_str()))
        .collect()
}

fn filters(l: &QueryLineage) -> Vec<String> {
    l.filters
        .iter()
        .map(|ColumnRef { relation, column }| format!("{relation}.{column}"))
        .collect()
}

#[test]
fn plain_select_copies_each_column() {
    let l = run("select id, amount from raw.orders");
    assert_eq!(names(&l), ["id", "amount"]);
    assert_eq!(edges(&l, "id"), ["raw.orders.id copied"]);
    assert_eq!(edges(&l, "amount"), ["raw.orders.amount copied"]);
    assert!(l.filters.is_empty());
    assert_eq!(l.relations.iter().collect::<Vec<_>>(), ["raw.orders"]);
}

#[test]
fn an_alias_renames_and_still_copies() {
    let l = run("select id as order_id, o.amount as total from raw.orders as o");
    assert_eq!(names(&l), ["order_id", "total"]);
    assert_eq!(edges(&l, "order_id"), ["raw.orders.id copied"]);
    assert_eq!(edges(&l, "total"), ["raw.orders.amount copied"]);
}

#[test]
fn arithmetic_transforms_every_column_it_reads() {
    let l = run("select amount * 100 + id as score from raw.orders");
    assert_eq!(
        edges(&l, "score"),
        ["raw.orders.amount transformed", "raw.orders.id transformed"]
    );
}

#[test]
fn casts_transform() {
    let l = run(
        "select cast(amount as decimal(10, 2)) as amount, created_at::date as day from raw.orders",
    );
    assert_eq!(edges(&l, "amount"), ["raw.orders.amount transformed"]);
    assert_eq!(edges(&l, "day"), ["raw.orders.created_at transformed"]);
}

#[test]
fn functions_transform() {
    let l = run("select upper(status) as status, coalesce(amount, id, 0) as a from raw.orders");
    assert_eq!(edges(&l, "status"), ["raw.orders.status transformed"]);
    assert_eq!(
        edges(&l, "a"),
        ["raw.orders.amount transformed", "raw.orders.id transformed"]
    );
}

#[test]
fn case_reads_its_conditions_and_results() {
    let l = run(
        "select case when status = 'paid' then amount else 0 end as paid_amount from raw.orders",
    );
    assert_eq!(
        edges(&l, "paid_amount"),
        [
            "raw.orders.amount transformed",
            "raw.orders.status transformed"
        ]
    );
}

#[test]
fn a_cte_chain_resolves_to_the_table() {
    let l = run("with a as (select id, amount as amt from raw.orders),
              b as (select id, amt * 2 as doubled from a)
         select id, doubled from b");
    assert_eq!(edges(&l, "id"), ["raw.orders.id copied"]);
    assert_eq!(edges(&l, "doubled"), ["raw.orders.amount transformed"]);
}

#[test]
fn a_nested_cte_resolves_through_both_levels() {
    let l = run("with outer_cte as (
            with inner_cte as (select customer_id as c from raw.orders)
            select c as customer from inner_cte
         )
         select customer from outer_cte");
    assert_eq!(edges(&l, "customer"), ["raw.orders.customer_id copied"]);
}

#[test]
fn a_join_with_aliases_resolves_each_side_and_filters_on_its_keys() {
    let l = run("select o.id, c.name as customer_name, o.amount
         from raw.orders o join raw.customers c on o.customer_id = c.id");
    assert_eq!(edges(&l, "id"), ["raw.orders.id copied"]);
    assert_eq!(edges(&l, "customer_name"), ["raw.customers.name copied"]);
    assert_eq!(filters(&l), ["raw.customers.id", "raw.orders.customer_id"]);
}

#[test]
fn a_left_join_using_filters_on_both_sides_and_star_shows_the_key_once() {
    let l = run(
        "select * from raw.customers left join (select customer_id as id, amount from raw.orders) o using (id)",
    );
    assert_eq!(names(&l), ["id", "name", "country", "amount"]);
    assert_eq!(edges(&l, "id"), ["raw.customers.id copied"]);
    assert_eq!(edges(&l, "amount"), ["raw.orders.amount copied"]);
    assert_eq!(filters(&l), ["raw.customers.id", "raw.orders.customer_id"]);
}

#[test]
fn a_subquery_in_from_resolves_through_it_with_its_filters() {
    let l = run(
        "select s.total from (select amount + 1 as total from raw.orders where status = 'paid') as s",
    );
    assert_eq!(edges(&l, "total"), ["raw.orders.amount transformed"]);
    assert_eq!(filters(&l), ["raw.orders.status"]);
}

#[test]
fn a_scalar_subquery_gives_its_column() {
    let l = run(
        "select c.id, (select max(o.amount) from raw.orders o where o.customer_id = c.id) as biggest
         from raw.customers c",
    );
    assert_eq!(edges(&l, "biggest"), ["raw.orders.amount aggregated"]);
    assert_eq!(filters(&l), ["raw.customers.id", "raw.orders.customer_id"]);
}

#[test]
fn an_aggregate_with_group_by_aggregates_and_copies_the_keys() {
    let l = run(
        "select customer_id, sum(amount) as total, avg(amount * 2) as mean
         from raw.orders group by customer_id",
    );
    assert_eq!(edges(&l, "customer_id"), ["raw.orders.customer_id copied"]);
    assert_eq!(edges(&l, "total"), ["raw.orders.amount aggregated"]);
    assert_eq!(edges(&l, "mean"), ["raw.orders.amount aggregated"]);
}

#[test]
fn count_star_reads_no_column() {
    let l = run(
        "select status, count(*) as n, count(distinct customer_id) as buyers from raw.orders group by status",
    );
    assert!(edges(&l, "n").is_empty(), "{:?}", edges(&l, "n"));
    assert_eq!(edges(&l, "buyers"), ["raw.orders.customer_id aggregated"]);
}

#[test]
fn a_window_function_aggregates_its_argument_and_transforms_its_window() {
    let l = run("select id,
            sum(amount) over (partition by customer_id order by created_at) as running,
            row_number() over (partition by customer_id order by created_at desc) as rn
         from raw.orders");
    assert_eq!(
        edges(&l, "running"),
        [
            "raw.orders.amount aggregated",
            "raw.orders.created_at transformed",
            "raw.orders.customer_id transformed"
        ]
    );
    assert_eq!(
        edges(&l, "rn"),
        [
            "raw.orders.created_at transformed",
            "raw.orders.customer_id transformed"
        ]
    );
}

#[test]
fn select_star_expands_the_known_columns() {
    let l = run("select * from raw.customers");
    assert_eq!(names(&l), ["id", "name", "country"]);
    assert_eq!(edges(&l, "country"), ["raw.customers.country copied"]);
}

#[test]
fn select_star_of_an_unknown_table_stays_a_star() {
    let l = run("select * from raw.unknown_table");
    assert_eq!(names(&l), ["*"]);
    assert_eq!(edges(&l, "*"), ["raw.unknown_table.* copied"]);
    // A name read through it is taken as its column.
    let l = run("with s as (select * from raw.unknown_table) select s.price * 2 as p from s");
    assert_eq!(edges(&l, "p"), ["raw.unknown_table.price transformed"]);
}

#[test]
fn qualified_star_expands_one_side_of_a_join() {
    let l =
        run("select c.*, o.amount from raw.customers c join raw.orders o on o.customer_id = c.id");
    assert_eq!(names(&l), ["id", "name", "country", "amount"]);
    assert_eq!(edges(&l, "id"), ["raw.customers.id copied"]);
    assert_eq!(edges(&l, "amount"), ["raw.orders.amount copied"]);
}

#[test]
fn star_exclude_and_replace_in_duckdb() {
    let l = run(
        "select * exclude (created_at, status) replace (amount / 100 as amount) from raw.orders",
    );
    assert_eq!(names(&l), ["id", "customer_id", "amount"]);
    assert_eq!(edges(&l, "amount"), ["raw.orders.amount transformed"]);
    assert_eq!(edges(&l, "id"), ["raw.orders.id copied"]);
}

#[test]
fn union_all_merges_columns_by_position() {
    let l = run("select id, name as label from raw.customers
         union all
         select id, status from raw.orders where amount > 0");
    assert_eq!(names(&l), ["id", "label"]);
    assert_eq!(
        edges(&l, "label"),
        ["raw.customers.name copied", "raw.orders.status copied"]
    );
    assert_eq!(
        edges(&l, "id"),
        ["raw.customers.id copied", "raw.orders.id copied"]
    );
    assert_eq!(filters(&l), ["raw.orders.amount"]);
}

#[test]
fn where_having_and_qualify_are_filters() {
    let l = run("select customer_id, sum(amount) as total from raw.orders
         where status = 'paid' group by customer_id having max(created_at) > '2024-01-01'");
    assert_eq!(filters(&l), ["raw.orders.created_at", "raw.orders.status"]);
    let l = run(
        "select id from raw.orders qualify row_number() over (partition by customer_id order by amount) = 1",
    );
    assert_eq!(filters(&l), ["raw.orders.amount", "raw.orders.customer_id"]);
}

#[test]
fn an_in_subquery_in_where_is_a_filter() {
    let l = run(
        "select id from raw.orders where customer_id in (select id from raw.customers where country = 'FR')",
    );
    assert_eq!(edges(&l, "id"), ["raw.orders.id copied"]);
    assert_eq!(
        filters(&l),
        [
            "raw.customers.country",
            "raw.customers.id",
            "raw.orders.customer_id"
        ]
    );
}

#[test]
fn schema_qualified_and_quoted_names_resolve() {
    let l = run(r#"select "main"."stg_orders"."amount", "Status" from "main"."stg_orders""#);
    assert_eq!(edges(&l, "amount"), ["main.stg_orders.amount copied"]);
    // A quoted name matches the column as DuckDB does: without case.
    assert_eq!(edges(&l, "Status"), ["main.stg_orders.status copied"]);
    let l = run("select RAW.ORDERS.ID from RAW.ORDERS");
    assert_eq!(edges(&l, "ID"), ["raw.orders.id copied"]);
}

#[test]
fn distinct_keeps_the_columns() {
    let l = run("select distinct customer_id, status from raw.orders");
    assert_eq!(edges(&l, "customer_id"), ["raw.orders.customer_id copied"]);
    assert_eq!(edges(&l, "status"), ["raw.orders.status copied"]);
}

#[test]
fn unnest_in_from_transforms_the_array() {
    let l = run_in(
        "select e.id, t.tag from raw.events e cross join unnest(e.tags) as t(tag)",
        Dialect::Postgres,
    );
    assert_eq!(edges(&l, "id"), ["raw.events.id copied"]);
    assert_eq!(edges(&l, "tag"), ["raw.events.tags transformed"]);
}

#[test]
fn an_earlier_alias_can_be_read_by_a_later_column() {
    let l = run("select amount * 2 as doubled, doubled + 1 as plus_one from raw.orders");
    assert_eq!(edges(&l, "plus_one"), ["raw.orders.amount transformed"]);
}

#[test]
fn a_cte_alias_list_renames_by_position() {
    let l = run("with t(a, b) as (select id, amount from raw.orders) select b from t");
    assert_eq!(edges(&l, "b"), ["raw.orders.amount copied"]);
}

#[test]
fn postgres_names_unnamed_columns_its_way() {
    let l = run_in(
        "select sum(amount), amount::text, id from raw.orders group by amount, id",
        Dialect::Postgres,
    );
    assert_eq!(names(&l), ["sum", "amount", "id"]);
}

#[test]
fn a_statement_that_is_not_one_query_is_an_error() {
    for sql in [
        "delete from raw.orders",
        "select 1; select 2",
        "select from where",
    ] {
        assert!(lineage(sql, Dialect::DuckDb, &catalog).is_err(), "{sql}");
    }
}
