//! Column-level lineage end to end, through the built binary: a CSV file
//! loaded by a pipeline into `raw.orders`, models on top of it, and
//! `flowline lineage` / `flowline models docs` across the whole chain.

mod common;

use common::TestProject;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A CSV file loaded by `pipelines/orders.toml` (cents to amount, test
/// orders left out), a staging model and a summary.
fn shop() -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/orders.csv\"\n\n[[transform]]\nsql = \"select id, customer, amount_cents / 100.0 as amount, status from input where status <> 'test'\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.write(
        "data/orders.csv",
        "id,customer,amount_cents,status\n1,c1,1000,paid\n2,c2,500,open\n3,c1,250,test\n",
    );
    p.write(
        "models/staging/stg_orders.sql",
        "select id, customer as customer_id, amount, status\nfrom {{ source('raw', 'orders') }}\n",
    );
    p.write(
        "models/marts/orders_summary.sql",
        "{{ config(materialized='table') }}\nwith paid as (\n  select * from {{ ref('stg_orders') }} where status = 'paid'\n)\nselect customer_id, sum(amount) as total, count(*) as orders\nfrom paid\ngroup by customer_id\n",
    );
    p.write(
        "models/marts/properties.yml",
        "version: 2\nmodels:\n  - name: orders_summary\n    description: Paid revenue per customer <b>& order count</b>.\n    columns:\n      - name: total\n        description: Sum of paid amounts.\n        data_tests: [not_null]\n",
    );
    p
}

/// `from -> to how` for every edge of a `lineage --json` answer.
fn edges(graph: &Value) -> Vec<String> {
    graph["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            format!(
                "{} -> {} {}",
                e["from"].as_str().unwrap_or_default(),
                e["to"].as_str().unwrap_or_default(),
                e["how"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn kind_of(graph: &Value, id: &str) -> String {
    graph["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["kind"].as_str())
        .unwrap_or_else(|| panic!("no node {id} in {graph}"))
        .to_string()
}

#[test]
fn a_raw_column_leads_back_to_the_file_and_on_to_the_models() {
    let p = shop();
    p.ok(&["run"]);
    let graph = json(&p.ok(&["lineage", "raw.orders.amount", "--json"]));
    assert_eq!(graph["column"], "raw.orders.amount");
    let edges = edges(&graph);
    for expected in [
        "data/orders.csv.amount_cents -> raw.orders.amount transformed",
        "data/orders.csv.status -> raw.orders filtered",
        "raw.orders.amount -> stg_orders.amount copied",
        "stg_orders.amount -> orders_summary.total aggregated",
    ] {
        assert!(
            edges.contains(&expected.to_string()),
            "{expected} not in {edges:#?}"
        );
    }
    assert_eq!(kind_of(&graph, "data/orders.csv.amount_cents"), "pipeline");
    assert_eq!(kind_of(&graph, "raw.orders.amount"), "source");
    assert_eq!(kind_of(&graph, "orders_summary.total"), "model");
    let pipeline_edge = graph["edges"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["to"] == "raw.orders.amount"))
        .expect("edge into raw.orders.amount");
    assert_eq!(pipeline_edge["pipeline"], "orders");
}

#[test]
fn upstream_and_downstream_limit_the_walk() {
    let p = shop();
    let up = edges(&json(&p.ok(&[
        "lineage",
        "orders_summary.total",
        "--upstream",
        "--json",
    ])));
    for expected in [
        "stg_orders.amount -> orders_summary.total aggregated",
        "raw.orders.amount -> stg_orders.amount copied",
        "data/orders.csv.amount_cents -> raw.orders.amount transformed",
        // The CTE's WHERE decides the model's rows.
        "stg_orders.status -> orders_summary filtered",
        "raw.orders.status -> stg_orders.status copied",
    ] {
        assert!(
            up.contains(&expected.to_string()),
            "{expected} not in {up:#?}"
        );
    }
    assert!(
        !up.iter().any(|e| e.contains("orders_summary.customer_id")),
        "{up:#?}"
    );

    let down = edges(&json(&p.ok(&[
        "lineage",
        "stg_orders.amount",
        "--downstream",
        "--json",
    ])));
    assert_eq!(
        down,
        ["stg_orders.amount -> orders_summary.total aggregated"]
    );

    // A model's column also answers to its relation's name.
    let by_relation = json(&p.ok(&["lineage", "main.stg_orders.amount", "--json"]));
    assert_eq!(by_relation["column"], "stg_orders.amount");
}

#[test]
fn the_tree_names_each_column_with_its_kind_and_edge() {
    let p = shop();
    let out = p.ok(&["lineage", "stg_orders.customer_id"]);
    assert!(out.starts_with("stg_orders.customer_id (model)\n"), "{out}");
    assert!(
        out.contains("<- raw.orders.customer (source) copied"),
        "{out}"
    );
    assert!(
        out.contains("<- data/orders.csv.customer (pipeline) copied, pipeline orders"),
        "{out}"
    );
    assert!(
        out.contains("-> orders_summary.customer_id (model) copied"),
        "{out}"
    );
}

#[test]
fn star_expands_with_the_warehouses_columns_once_the_table_exists() {
    let p = TestProject::new();
    p.write(
        "pipelines/events.toml",
        "[source]\nkind = \"file\"\npath = \"data/events.csv\"\n\n[destination]\ntable = \"raw.events\"\n",
    );
    p.write("data/events.csv", "id,kind,at\n1,click,2024-01-01\n");
    p.write(
        "models/events_copy.sql",
        "select * from {{ source('raw', 'events') }}\n",
    );
    // Before the load, the table's columns are unknown: a star edge.
    let before = edges(&json(&p.ok(&["lineage", "events_copy.*", "--json"])));
    assert!(
        before.contains(&"raw.events.* -> events_copy.* copied".to_string()),
        "{before:#?}"
    );
    p.ok(&["run"]);
    let after = edges(&json(&p.ok(&["lineage", "events_copy.kind", "--json"])));
    assert!(
        after.contains(&"raw.events.kind -> events_copy.kind copied".to_string()),
        "{after:#?}"
    );
    assert!(
        after.contains(&"data/events.csv.kind -> raw.events.kind copied".to_string()),
        "{after:#?}"
    );
}

#[test]
fn an_unknown_column_is_an_error_naming_what_exists() {
    let p = shop();
    let out = p.fails(&["lineage", "orders_summary.totl"]);
    assert!(
        out.contains("no column orders_summary.totl")
            && out.contains("orders_summary has: customer_id, orders, total"),
        "{out}"
    );
    let out = p.fails(&["lineage", "raw.order.amount"]);
    assert!(out.contains("did you mean: raw.orders"), "{out}");
}

#[test]
fn lineage_works_in_a_dbt_project_folder() {
    let p = TestProject::new();
    std::fs::remove_file(p.path().join("flowline.toml")).expect("remove flowline.toml");
    p.write(
        "dbt_project.yml",
        "name: jaffle\nmodel-paths: [\"models\"]\n",
    );
    p.write(
        "models/sources.yml",
        "version: 2\nsources:\n  - name: shop\n    schema: raw\n    tables:\n      - name: payments\n",
    );
    p.write(
        "models/payments.sql",
        "select id, amount_cents / 100 as amount from {{ source('shop', 'payments') }} where amount_cents > 0\n",
    );
    let graph = json(&p.ok(&["lineage", "payments.amount", "--json"]));
    assert_eq!(
        edges(&graph),
        [
            "raw.payments.amount_cents -> payments filtered",
            "raw.payments.amount_cents -> payments.amount transformed"
        ]
    );
}

#[test]
fn models_docs_writes_a_page_and_a_catalog_with_models_columns_and_edges() {
    let p = shop();
    p.ok(&["run"]);
    let out = json(&p.ok(&["models", "docs", "--json"]));
    let index =
        std::fs::read_to_string(out["index"].as_str().expect("index path")).expect("index.html");
    let catalog = json(
        &std::fs::read_to_string(out["catalog"].as_str().expect("catalog path"))
            .expect("catalog.json"),
    );
    assert!(
        out["index"]
            .as_str()
            .is_some_and(|i| i.ends_with(".flowline/docs/index.html")),
        "{out}"
    );

    // The page: every model, its columns, descriptions escaped, the edges.
    for text in [
        "<h2>stg_orders</h2>",
        "<h2>orders_summary</h2>",
        "Paid revenue per customer &lt;b&gt;&amp; order count&lt;/b&gt;.",
        "Sum of paid amounts.",
        "not_null_orders_summary_total",
        "stg_orders.amount <span class=\"how\">aggregated</span>",
        "<td>data/orders.csv.amount_cents</td><td class=\"how\">transformed</td><td>raw.orders.amount</td>",
    ] {
        assert!(index.contains(text), "{text} not in index.html:\n{index}");
    }
    assert!(!index.contains("<b>& order"), "user text is escaped");
    assert!(!index.contains("src=\"http") && !index.contains("href=\"http"));

    // The catalog: the same, as JSON.
    let models = catalog["models"].as_array().expect("models");
    let names: Vec<&str> = models.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["stg_orders", "orders_summary"]);
    let summary = &models[1];
    assert_eq!(summary["materialized"], "table");
    assert_eq!(
        summary["description"],
        "Paid revenue per customer <b>& order count</b>."
    );
    let columns: Vec<&str> = summary["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["customer_id", "total", "orders"]);
    let total = &summary["columns"][1];
    assert_eq!(total["description"], "Sum of paid amounts.");
    assert_eq!(total["tests"][0], "not_null_orders_summary_total");
    assert_eq!(total["upstream"][0]["from"], "stg_orders.amount");
    assert_eq!(total["upstream"][0]["how"], "aggregated");
    assert!(
        summary["compiled_sql"]
            .as_str()
            .is_some_and(|s| s.contains("\"main\".\"stg_orders\"")),
        "{summary}"
    );
    assert_eq!(catalog["sources"][0]["relation"], "raw.orders");
    let edges = catalog["lineage"]["edges"].as_array().expect("edges");
    assert!(
        edges
            .iter()
            .any(|e| e["from"] == "raw.orders.amount" && e["to"] == "stg_orders.amount"),
        "{edges:#?}"
    );
}
