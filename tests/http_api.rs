//! End to end: `kind = "http"` pipelines against real HTTP servers the
//! tests start: every pagination style, the auth kinds, retries on 429 and
//! 5xx, timeouts, bad bodies, runaway pagination, incremental loads, child
//! resources and nested records.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use common::TestProject;

type Params = Query<HashMap<String, String>>;

fn serve(router: Router) -> String {
    common::serve_http(router)
}

fn item(id: i64) -> Value {
    json!({"id": id, "name": format!("item {id}"), "price": id as f64 * 1.5})
}

fn param(q: &HashMap<String, String>, name: &str, default: i64) -> i64 {
    q.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pipeline(url_and_more: &str) -> String {
    format!("[source]\nkind = \"http\"\n{url_and_more}\n\n[destination]\ntable = \"raw.items\"\n")
}

#[test]
fn page_number_pagination_stops_at_the_total() {
    let base = serve(Router::new().route(
        "/items",
        get(|Query(q): Params| async move {
            let page = param(&q, "page", 1);
            let size = param(&q, "per_page", 10);
            let items: Vec<Value> = ((page - 1) * size + 1..=page * size).map(item).collect();
            axum::Json(json!({"data": {"items": items}, "meta": {"pages": 3}}))
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\nrecords = \"data.items\"\n\
             paginate = {{ kind = \"page\", param = \"page\", page_size = 5, size_param = \"per_page\", total_path = \"meta.pages\" }}"
        )),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 15);
    assert_eq!(p.scalar("select max(id) from raw.items"), 15);
    let rows = p.query("select name, price from raw.items where id = 2");
    assert_eq!(rows[0]["name"], "item 2");
    assert_eq!(rows[0]["price"], 3.0);
}

#[test]
fn offset_pagination_stops_on_an_empty_page() {
    let base = serve(Router::new().route(
        "/items",
        get(|Query(q): Params| async move {
            let offset = param(&q, "offset", 0);
            let limit = param(&q, "limit", 100);
            let items: Vec<Value> = (offset + 1..=(offset + limit).min(23)).map(item).collect();
            axum::Json(json!({"results": items}))
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\npaginate = {{ kind = \"offset\", limit = 10 }}"
        )),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 23);
    assert_eq!(p.scalar("select count(distinct id) from raw.items"), 23);
}

#[test]
fn cursor_pagination_follows_the_body_cursor() {
    let base = serve(Router::new().route(
        "/items",
        get(|Query(q): Params| async move {
            let start = param(&q, "cursor", 0);
            let items: Vec<Value> = (start + 1..=start + 4).map(item).collect();
            let next = if start + 4 < 12 {
                json!((start + 4).to_string())
            } else {
                Value::Null
            };
            axum::Json(json!({"items": items, "next_cursor": next}))
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\nrecords = \"items\"\n\
             paginate = {{ kind = \"cursor\", cursor_path = \"next_cursor\", param = \"cursor\" }}"
        )),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 12);
}

#[test]
fn next_url_and_link_header_pagination() {
    let base = serve(
        Router::new()
            .route(
                "/next",
                get(|Query(q): Params| async move {
                    let page = param(&q, "p", 1);
                    let next = (page < 3).then(|| format!("/next?p={}", page + 1));
                    axum::Json(json!({"items": [item(page)], "links": {"next": next}}))
                }),
            )
            .route(
                "/linked",
                get(|Query(q): Params| async move {
                    let page = param(&q, "p", 1);
                    let mut headers = HeaderMap::new();
                    if page < 4 {
                        let link = format!(
                            "</linked?p={}>; rel=\"next\", </linked?p=4>; rel=\"last\"",
                            page + 1
                        );
                        headers.insert("link", link.parse().expect("header"));
                    }
                    (headers, axum::Json(json!([item(page)])))
                }),
            ),
    );
    let p = TestProject::new();
    p.write(
        "pipelines/next.toml",
        format!(
            "[source]\nkind = \"http\"\nurl = \"{base}/next\"\nrecords = \"items\"\n\
             paginate = {{ kind = \"next_url\", next_path = \"links.next\" }}\n\
             [destination]\ntable = \"raw.next\"\n"
        ),
    );
    p.write(
        "pipelines/linked.toml",
        format!(
            "[source]\nkind = \"http\"\nurl = \"{base}/linked\"\n\
             paginate = {{ kind = \"link_header\" }}\n\
             [destination]\ntable = \"raw.linked\"\n"
        ),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.next"), 3);
    assert_eq!(p.scalar("select count(*) from raw.linked"), 4);
}

/// A server that answers only requests carrying the expected credentials.
fn guarded(check: fn(&HeaderMap, &HashMap<String, String>) -> bool) -> String {
    serve(Router::new().route(
        "/items",
        get(move |headers: HeaderMap, Query(q): Params| async move {
            if check(&headers, &q) {
                axum::Json(json!([item(1), item(2)])).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "bad credentials").into_response()
            }
        }),
    ))
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn bearer_basic_and_api_key_auth() {
    let cases = [
        (
            guarded(|h, _| header(h, "authorization") == "Bearer s3cret-token"),
            "auth = { kind = \"bearer\", token = \"${API_TOKEN}\" }",
        ),
        (
            // "ann:pw" in base64
            guarded(|h, _| header(h, "authorization") == "Basic YW5uOnB3"),
            "auth = { kind = \"basic\", username = \"ann\", password = \"pw\" }",
        ),
        (
            guarded(|h, _| header(h, "x-api-key") == "s3cret-token"),
            "auth = { kind = \"api_key\", key = \"${API_TOKEN}\" }",
        ),
        (
            guarded(|_, q| q.get("api_key").map(String::as_str) == Some("s3cret-token")),
            "auth = { kind = \"api_key\", name = \"api_key\", key = \"${API_TOKEN}\", location = \"query\" }",
        ),
    ];
    for (base, auth) in cases {
        let p = TestProject::new();
        p.write(".env", "API_TOKEN=s3cret-token\n");
        p.write(
            "pipelines/items.toml",
            pipeline(&format!("url = \"{base}/items\"\n{auth}")),
        );
        p.ok(&["run"]);
        assert_eq!(p.scalar("select count(*) from raw.items"), 2, "{auth}");
    }
}

#[test]
fn oauth2_client_credentials_fetches_and_refreshes_the_token() {
    let issued = Arc::new(AtomicUsize::new(0));
    let issued_by_server = issued.clone();
    let base = serve(
        Router::new()
            .route(
                "/token",
                post(move |body: String| {
                    let issued = issued_by_server.clone();
                    async move {
                        if !body.contains("client_secret=shh")
                            || !body.contains("grant_type=client_credentials")
                        {
                            return (StatusCode::BAD_REQUEST, "bad client").into_response();
                        }
                        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                        // Tokens expire at once, so every request needs a new one.
                        axum::Json(json!({"access_token": format!("tok{n}"), "expires_in": 0}))
                            .into_response()
                    }
                }),
            )
            .route(
                "/items",
                get(|headers: HeaderMap, Query(q): Params| async move {
                    if !header(&headers, "authorization").starts_with("Bearer tok") {
                        return (StatusCode::UNAUTHORIZED, "no token").into_response();
                    }
                    let page = param(&q, "page", 1);
                    axum::Json(json!({"items": [item(page)], "pages": 3})).into_response()
                }),
            ),
    );
    let p = TestProject::new();
    p.write(".env", "CLIENT_SECRET=shh\n");
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\nrecords = \"items\"\n\
             paginate = {{ kind = \"page\", total_path = \"pages\" }}\n\
             auth = {{ kind = \"oauth2_client_credentials\", token_url = \"{base}/token\", client_id = \"app\", client_secret = \"${{CLIENT_SECRET}}\" }}"
        )),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 3);
    assert_eq!(
        issued.load(Ordering::SeqCst),
        3,
        "a fresh token per expired one"
    );
}

#[test]
fn retries_429_with_retry_after_and_5xx_then_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let base = serve(Router::new().route(
        "/items",
        get(move || {
            let calls = counter.clone();
            async move {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response(),
                    1 | 2 => (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response(),
                    _ => axum::Json(json!([item(1)])).into_response(),
                }
            }
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!("url = \"{base}/items\"\nbackoff = \"50ms\"")),
    );
    let started = std::time::Instant::now();
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

#[test]
fn a_slow_response_times_out_and_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let base = serve(Router::new().route(
        "/items",
        get(move || {
            let calls = counter.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                axum::Json(json!([item(1)]))
            }
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\ntimeout = \"500ms\"\nbackoff = \"10ms\""
        )),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn giving_up_names_the_status_and_body_and_never_the_secret() {
    let base = serve(Router::new().route(
        "/items",
        get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database is on fire") }),
    ));
    let p = TestProject::new();
    p.write(".env", "API_TOKEN=very-secret-value\n");
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\nretries = 2\nbackoff = \"10ms\"\n\
             auth = {{ kind = \"api_key\", name = \"key\", key = \"${{API_TOKEN}}\", location = \"query\" }}"
        )),
    );
    let out = p.fails(&["run"]);
    assert!(out.contains("500"), "{out}");
    assert!(out.contains("database is on fire"), "{out}");
    assert!(out.contains("after 3 attempts"), "{out}");
    assert!(!out.contains("very-secret-value"), "{out}");
}

#[test]
fn malformed_pages_become_dead_letters_and_the_rest_loads() {
    let base = serve(Router::new().route(
        "/items",
        get(|Query(q): Params| async move {
            match param(&q, "page", 1) {
                2 => "{\"items\": [oops".to_string().into_response(),
                page if page <= 3 => {
                    axum::Json(json!({"items": [item(page), "not an object"]})).into_response()
                }
                _ => axum::Json(json!({"items": []})).into_response(),
            }
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\nrecords = \"items\"\npaginate = {{ kind = \"page\" }}"
        )),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 2);
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter order by origin");
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(
        letters.iter().any(|l| l["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not valid JSON")
            && l["raw"].as_str().unwrap_or("").contains("oops")),
        "{letters:?}"
    );
}

#[test]
fn max_pages_stops_a_server_that_never_ends() {
    let base = serve(Router::new().route(
        "/items",
        get(|Query(q): Params| async move {
            let page = param(&q, "page", 1);
            axum::Json(json!({"items": [item(page)]}))
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\npaginate = {{ kind = \"page\" }}\nmax_pages = 7"
        )),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 7);
}

#[test]
fn an_api_that_ignores_the_page_parameter_stops_at_the_repeated_page() {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let base = serve(Router::new().route(
        "/items",
        get(move || {
            let counter = counter.clone();
            async move {
                // The same records whatever `page` says, with a changing
                // field outside them.
                let n = counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"items": [item(1), item(2)], "served": n}))
            }
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\nrecords = \"items\"\npaginate = {{ kind = \"page\" }}"
        )),
    );
    let out = p
        .command(&["run"])
        .env("FLOWLINE_LOG", "warn")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("holds the same records as the page before it")
            && stderr.contains("paginate = { kind = \"page\", param = \"page\" }"),
        "{stderr}"
    );
    assert_eq!(
        p.scalar("select count(*) from raw.items"),
        2,
        "the repeat is not loaded"
    );
    assert!(requests.load(Ordering::SeqCst) <= 3, "stopped at once");
}

#[test]
fn the_default_max_pages_stops_an_endless_api_with_a_warning() {
    let base = serve(Router::new().route(
        "/items",
        get(|Query(q): Params| async move {
            let page = param(&q, "page", 1);
            axum::Json(json!({"items": [item(page)]}))
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\npaginate = {{ kind = \"page\" }}"
        )),
    );
    let out = p
        .command(&["run"])
        .env("FLOWLINE_LOG", "warn")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("stopped after 1000 pages, the default max_pages")
            && stderr.contains("set max_pages in [source]"),
        "{stderr}"
    );
    assert_eq!(p.scalar("select count(*) from raw.items"), 1000);
}

#[test]
fn incremental_sends_the_saved_cursor_back() {
    let rows: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(
        (1..=5)
            .map(|i| json!({"id": i, "updated_at": format!("2024-01-0{i}T00:00:00Z")}))
            .collect(),
    ));
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let (server_rows, server_seen) = (rows.clone(), seen.clone());
    let base = serve(Router::new().route(
        "/items",
        get(move |Query(q): Params| {
            let (rows, seen) = (server_rows.clone(), server_seen.clone());
            async move {
                let since = q.get("since").cloned();
                seen.lock().expect("lock").push(since.clone());
                let rows = rows.lock().expect("lock");
                let out: Vec<Value> = rows
                    .iter()
                    .filter(|r| {
                        since
                            .as_deref()
                            .is_none_or(|s| r["updated_at"].as_str().unwrap_or("") > s)
                    })
                    .cloned()
                    .collect();
                axum::Json(out)
            }
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        format!(
            "[source]\nkind = \"http\"\nurl = \"{base}/items\"\n\
             incremental = {{ cursor = \"updated_at\", param = \"since\" }}\n\
             [destination]\ntable = \"raw.items\"\nwrite = \"merge\"\nprimary_key = [\"id\"]\n"
        ),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 5);
    rows.lock()
        .expect("lock")
        .push(json!({"id": 6, "updated_at": "2024-01-09T00:00:00Z"}));
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 6);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![None, Some("2024-01-05T00:00:00Z".to_string())],
        "the second run asks only for what is new"
    );
    p.ok(&["run", "--full-refresh"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 6);
}

#[test]
fn child_resources_land_in_their_own_table_with_the_parent_key() {
    let base = serve(
        Router::new()
            .route(
                "/users",
                get(|| async {
                    axum::Json(json!([{"id": 1, "name": "ann"}, {"id": 2, "name": "bo"}]))
                }),
            )
            .route(
                "/users/{id}/orders",
                get(|Path(id): Path<i64>| async move {
                    let orders: Vec<Value> = (0..id)
                        .map(|n| json!({"order_id": id * 100 + n, "total": 9.5}))
                        .collect();
                    axum::Json(json!({"orders": orders}))
                }),
            ),
    );
    let p = TestProject::new();
    p.write(
        "pipelines/users.toml",
        format!(
            "[source]\nkind = \"http\"\nurl = \"{base}/users\"\n\n\
             [[source.children]]\nname = \"orders\"\nurl = \"/users/{{id}}/orders\"\nrecords = \"orders\"\n\n\
             [destination]\ntable = \"raw.users\"\n"
        ),
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.users"), 2);
    let orders = p.query("select _parent_id, order_id from raw.users__orders order by order_id");
    assert_eq!(
        orders,
        vec![
            json!({"_parent_id": 1, "order_id": 100}),
            json!({"_parent_id": 2, "order_id": 200}),
            json!({"_parent_id": 2, "order_id": 201}),
        ]
    );
}

#[test]
fn nested_records_flatten_and_arrays_unnest_into_child_tables() {
    let base = serve(Router::new().route(
        "/orders",
        get(|| async {
            axum::Json(json!([
                {"id": 1, "customer": {"name": "ann", "address": {"city": "Oslo"}},
                 "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]},
                {"id": 2, "customer": {"name": "bo", "address": {"city": "Rome"}}, "lines": []}
            ]))
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        format!(
            "[source]\nkind = \"http\"\nurl = \"{base}/orders\"\nflatten = true\nunnest = [\"lines\"]\n\
             [destination]\ntable = \"raw.orders\"\n"
        ),
    );
    p.ok(&["run"]);
    let rows =
        p.query("select id, customer__name, customer__address__city from raw.orders order by id");
    assert_eq!(
        rows[1],
        json!({"id": 2, "customer__name": "bo", "customer__address__city": "Rome"})
    );
    let lines =
        p.query("select _parent_id, _index, sku, qty from raw.orders__lines order by _index");
    assert_eq!(
        lines,
        vec![
            json!({"_parent_id": 1, "_index": 0, "sku": "a", "qty": 2}),
            json!({"_parent_id": 1, "_index": 1, "sku": "b", "qty": 1}),
        ]
    );
}

#[test]
fn rate_limit_spaces_requests_out() {
    let base = serve(Router::new().route(
        "/items",
        get(|Query(q): Params| async move {
            let page = param(&q, "page", 1);
            let items: Vec<Value> = if page <= 5 { vec![item(page)] } else { vec![] };
            axum::Json(items)
        }),
    ));
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline(&format!(
            "url = \"{base}/items\"\npaginate = {{ kind = \"page\" }}\nrequests_per_second = 10"
        )),
    );
    let started = std::time::Instant::now();
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.items"), 5);
    // Six requests at ten a second take at least half a second.
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn a_bad_http_config_names_the_line() {
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        "[source]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/x\"\npaginate = { kind = \"pages\" }\n[destination]\ntable = \"t\"\n",
    );
    let out = p.fails(&["validate"]);
    assert!(out.contains("items.toml:4"), "{out}");
    assert!(out.contains("pages"), "{out}");
}

#[test]
fn responses_are_never_a_reason_to_panic() {
    // Connection refused: a clear error after the retries.
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        pipeline("url = \"http://127.0.0.1:1/items\"\nretries = 1\nbackoff = \"10ms\""),
    );
    let out = p.fails(&["run"]);
    assert!(out.contains("could not connect"), "{out}");
    assert!(out.contains("127.0.0.1:1"), "{out}");
}
