//! End to end: `kind = "scrape"` pipelines against a real web site the tests
//! serve: paginated listings, detail pages, robots.txt, a Latin-1 page, a
//! value that does not convert, and (with Chromium installed) a page whose
//! rows only a browser sees.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use common::{TestProject, browser_installed};

/// A web site: pages by path, and how often each path was asked for.
#[derive(Default)]
struct Site {
    pages: HashMap<String, (&'static str, Vec<u8>)>,
    hits: Mutex<HashMap<String, usize>>,
}

impl Site {
    fn html(mut self, path: &str, body: impl Into<String>) -> Self {
        self.pages.insert(
            path.into(),
            ("text/html; charset=utf-8", body.into().into_bytes()),
        );
        self
    }

    fn raw(mut self, path: &str, content_type: &'static str, body: Vec<u8>) -> Self {
        self.pages.insert(path.into(), (content_type, body));
        self
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

async fn answer(State(site): State<Arc<Site>>, uri: Uri) -> Response {
    let path = uri.path().to_string();
    *site
        .hits
        .lock()
        .expect("hits")
        .entry(path.clone())
        .or_default() += 1;
    match site.pages.get(&path) {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type)], body.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such page").into_response(),
    }
}

/// Serves `site` on 127.0.0.1; returns the base URL.
fn serve(site: Arc<Site>) -> String {
    common::serve_http(Router::new().fallback(answer).with_state(site))
}

/// A product `<li>`: product 5 has no stock line.
fn product(k: usize) -> String {
    let stock = if k == 5 {
        String::new()
    } else {
        format!("<span class=\"stock\">{} in stock</span>", k * 10)
    };
    format!(
        "<li class=\"product\">\n  <a class=\"name\" href=\"../item/{k}.html\">  Product\n   {k} </a>\n  \
         <span class=\"price\">$ {k}.50</span> {stock}\n</li>\n"
    )
}

/// Listing page `n` of 3, three products each; the last links back to the first.
fn listing(n: usize) -> String {
    let products: String = (3 * n - 2..=3 * n).map(product).collect();
    let next = if n < 3 {
        format!("{}.html", n + 1)
    } else {
        "1.html#top".to_string()
    };
    format!(
        "<!doctype html><html><head><title>Shop, page {n}</title></head><body>\
         <ul>{products}</ul><a class=\"next\" href=\"{next}\">next</a></body></html>"
    )
}

fn detail(k: usize) -> String {
    format!(
        "<html><body><h1>Product {k}</h1><div class=\"desc\">  Description of\n <em>product {k}</em> </div>\
         <p>SKU: <span id=\"sku\">SKU-{k:04}</span></p></body></html>"
    )
}

/// The Latin-1 page: its charset is only in a meta tag.
fn latin1_page() -> Vec<u8> {
    let text = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=ISO-8859-1\">\
                </head><body><ul><li class=\"p\"><b>Café Crème</b></li><li class=\"p\"><b>Größe ½</b></li></ul></body></html>";
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1"))
        .collect()
}

/// A page whose rows a script adds after the page has loaded.
const JS_PAGE: &str = r#"<!doctype html><html><body><table id="t"></table>
<script>
setTimeout(function () {
  var t = document.getElementById("t");
  [["alpha", 1], ["beta", 2], ["gamma", 3]].forEach(function (r) {
    var row = document.createElement("tr");
    row.className = "row";
    row.innerHTML = "<td class=\"name\">" + r[0] + "</td><td class=\"qty\">" + r[1] + "</td>";
    t.appendChild(row);
  });
}, 300);
</script></body></html>"#;

fn shop() -> Arc<Site> {
    let mut site = Site::default()
        .raw(
            "/robots.txt",
            "text/plain",
            b"User-agent: *\nDisallow: /private/\n".to_vec(),
        )
        .html(
            "/open.html",
            "<ul><li class=\"product\"><a class=\"name\">Open</a></li></ul>",
        )
        .html(
            "/private/page.html",
            "<ul><li class=\"product\"><a class=\"name\">Secret</a></li></ul>",
        )
        .raw("/latin1.html", "text/html", latin1_page())
        .html(
            "/bad.html",
            "<ul><li class=\"product\"><a class=\"name\">Mug</a><span class=\"price\">2.5</span></li>\
             <li class=\"product\"><a class=\"name\">Vase</a><span class=\"price\">call us</span></li>\
             <li class=\"product\"><a class=\"name\">Jug</a><span class=\"price\">4</span></li></ul>",
        )
        .html("/js.html", JS_PAGE);
    for n in 1..=3 {
        site = site.html(&format!("/shop/page/{n}.html"), listing(n));
    }
    for k in 1..=9 {
        site = site.html(&format!("/shop/item/{k}.html"), detail(k));
    }
    Arc::new(site)
}

fn pipeline(source: &str) -> String {
    format!("[source]\nkind = \"scrape\"\n{source}\n\n[destination]\ntable = \"shop.products\"\n")
}

/// stderr of a run that must succeed.
fn run_ok(p: &TestProject, name: &str) -> String {
    let out = p.flowline(&["run", name]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "flowline run {name} failed:\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn listing_pages_follow_next_and_fields_take_text_attributes_regex_and_types() {
    let site = shop();
    let base = serve(site.clone());
    let p = TestProject::new();
    p.write(
        "pipelines/products.toml",
        pipeline(&format!(
            r#"url = "{base}/shop/page/1.html"
rows = "li.product"
next = "a.next"
fields = {{ name = ".name", link = ".name@href", price = {{ selector = ".price", regex = "([0-9.]+)", type = "double" }}, stock = {{ selector = ".stock", regex = "(\\d+) in stock", type = "bigint" }} }}"#
        )),
    );
    run_ok(&p, "products");

    let rows = p.query("select name, price, stock, link, _url from shop.products order by name");
    let expected: Vec<Value> = (1..=9)
        .map(|k| {
            let mut row = json!({
                "name": format!("Product {k}"),
                "price": k as f64 + 0.5,
                "link": format!("{base}/shop/item/{k}.html"),
                "_url": format!("{base}/shop/page/{}.html", (k + 2) / 3),
            });
            // Product 5 has no stock line: NULL, which `sql --format json` leaves out.
            if k != 5 {
                row["stock"] = json!(k * 10);
            }
            row
        })
        .collect();
    assert_eq!(rows, expected);
    let types = p.query(
        "select column_name, data_type from information_schema.columns \
         where table_name = 'products' and column_name in ('price', 'stock') order by column_name",
    );
    assert_eq!(types[0]["data_type"], "DOUBLE");
    assert_eq!(types[1]["data_type"], "BIGINT");
    assert_eq!(
        site.hits("/shop/page/1.html"),
        1,
        "the last page links back to the first, which is not read again"
    );
    assert_eq!(site.hits("/shop/page/3.html"), 1);
    assert_eq!(site.hits("/robots.txt"), 1);
}

#[test]
fn page_templates_run_over_their_range_within_max_pages() {
    let site = shop();
    let base = serve(site.clone());
    let p = TestProject::new();
    p.write(
        "pipelines/products.toml",
        pipeline(&format!(
            "url = \"{base}/shop/page/{{page}}.html\"\npages = {{ from = 1, to = 3 }}\nmax_pages = 2\n\
             rows = \"li.product\"\nfields = {{ name = \".name\" }}"
        )),
    );
    let stderr = run_ok(&p, "products");
    assert_eq!(p.scalar("select count(*) from shop.products"), 6);
    assert_eq!(site.hits("/shop/page/3.html"), 0);
    assert!(stderr.contains("max_pages = 2 reached"), "{stderr}");
}

#[test]
fn detail_pages_add_their_fields_to_each_row() {
    let site = shop();
    let base = serve(site.clone());
    let p = TestProject::new();
    p.write(
        "pipelines/products.toml",
        pipeline(&format!(
            r##"url = "{base}/shop/page/1.html"
rows = "li.product"
next = "a.next"
max_pages = 1
concurrency = 2
fields = {{ name = ".name", link = ".name@href" }}
detail = {{ link = "link", fields = {{ description = ".desc", sku = {{ selector = "#sku", regex = "SKU-(\\d+)", type = "bigint" }} }} }}"##
        )),
    );
    run_ok(&p, "products");
    let rows = p.query("select name, description, sku from shop.products order by name");
    let expected: Vec<Value> = (1..=3)
        .map(|k| {
            json!({
                "name": format!("Product {k}"),
                "description": format!("Description of product {k}"),
                "sku": k,
            })
        })
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(site.hits("/shop/page/2.html"), 0, "max_pages = 1");
    assert_eq!(site.hits("/shop/item/4.html"), 0);
}

#[test]
fn robots_txt_disallowed_pages_are_skipped_unless_robots_is_false() {
    let site = shop();
    let base = serve(site.clone());
    let p = TestProject::new();
    let source = format!(
        "urls = [\"{base}/open.html\", \"{base}/private/page.html\"]\nrows = \"li.product\"\n\
         fields = {{ name = \".name\" }}\n"
    );
    p.write("pipelines/polite.toml", pipeline(&source));
    let stderr = run_ok(&p, "polite");
    let names = p.query("select name from shop.products");
    assert_eq!(names, vec![json!({"name": "Open"})]);
    assert_eq!(site.hits("/private/page.html"), 0);
    assert!(
        stderr.contains(&format!(
            "skipping {base}/private/page.html: robots.txt disallows it"
        )),
        "{stderr}"
    );

    p.write(
        "pipelines/polite.toml",
        pipeline(&format!("{source}robots = false\n")),
    );
    run_ok(&p, "polite");
    assert_eq!(
        p.scalar("select count(*) from shop.products where name = 'Secret'"),
        1
    );
    assert_eq!(site.hits("/private/page.html"), 1);
}

#[test]
fn latin1_pages_are_decoded_by_their_meta_charset() {
    let base = serve(shop());
    let p = TestProject::new();
    p.write(
        "pipelines/products.toml",
        pipeline(&format!(
            "url = \"{base}/latin1.html\"\nrows = \"li.p\"\nfields = {{ name = \"b\" }}"
        )),
    );
    run_ok(&p, "products");
    let names = p.query("select name from shop.products order by name");
    assert_eq!(
        names,
        vec![json!({"name": "Café Crème"}), json!({"name": "Größe ½"})]
    );
}

#[test]
fn values_that_do_not_convert_become_dead_letters() {
    let base = serve(shop());
    let p = TestProject::new();
    p.write(
        "pipelines/products.toml",
        pipeline(&format!(
            "url = \"{base}/bad.html\"\nrows = \"li.product\"\n\
             fields = {{ name = \".name\", price = {{ selector = \".price\", type = \"double\" }} }}"
        )),
    );
    run_ok(&p, "products");
    let rows = p.query("select name, price from shop.products order by name");
    assert_eq!(
        rows,
        vec![
            json!({"name": "Jug", "price": 4.0}),
            json!({"name": "Mug", "price": 2.5}),
        ]
    );
    let letters = p.query("select pipeline, origin, reason, raw from _flowline_dead_letter");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["pipeline"], "products");
    assert_eq!(letters[0]["origin"], format!("{base}/bad.html#1"));
    let reason = letters[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("column \"price\": cannot convert \"call us\" to DOUBLE"),
        "{reason}"
    );
    let raw: Value = serde_json::from_str(letters[0]["raw"].as_str().unwrap_or("")).expect("json");
    assert_eq!(raw["name"], "Vase");
    assert_eq!(raw["price"], "call us");
}

#[test]
fn a_page_that_fails_fails_the_run_with_its_url_and_status() {
    let base = serve(shop());
    let p = TestProject::new();
    p.write(
        "pipelines/products.toml",
        pipeline(&format!(
            "url = \"{base}/shop/missing.html\"\nrows = \"li\"\nretries = 0\nfields = {{ name = \".name\" }}"
        )),
    );
    let err = p.fails(&["run"]);
    assert!(
        err.contains(&format!("GET {base}/shop/missing.html: HTTP 404")),
        "{err}"
    );
}

#[test]
fn browser_renders_javascript_before_scraping() {
    if !browser_installed() {
        return;
    }
    let base = serve(shop());
    let p = TestProject::new();
    let source = format!(
        "url = \"{base}/js.html\"\nrows = \"tr.row\"\n\
         fields = {{ name = \".name\", qty = {{ selector = \".qty\", type = \"bigint\" }} }}\n"
    );
    p.write("pipelines/plain.toml", pipeline(&source));
    let stderr = run_ok(&p, "plain");
    assert!(
        stderr.contains("nothing matches rows = \"tr.row\""),
        "a plain fetch sees no rows: {stderr}"
    );

    p.write(
        "pipelines/rendered.toml",
        pipeline(&format!(
            "{source}render = \"browser\"\nwait_for = \"tr.row\"\nactions = [ {{ scroll = \"bottom\" }}, {{ wait = \"50ms\" }} ]\n"
        )),
    );
    run_ok(&p, "rendered");
    let rows = p.query("select name, qty, _url from shop.products order by qty");
    let expected: Vec<Value> = [("alpha", 1), ("beta", 2), ("gamma", 3)]
        .iter()
        .map(|(name, qty)| json!({"name": name, "qty": qty, "_url": format!("{base}/js.html")}))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn browser_failure_saves_a_screenshot_and_the_page() {
    if !browser_installed() {
        return;
    }
    let base = serve(shop());
    let p = TestProject::new();
    p.write(
        "pipelines/rendered.toml",
        pipeline(&format!(
            "url = \"{base}/js.html\"\nrows = \"tr.row\"\nfields = {{ name = \".name\" }}\n\
             render = \"browser\"\nwait_for = \"tr.never\"\nwait_timeout = \"2s\"\n"
        )),
    );
    let err = p.fails(&["run", "rendered"]);
    assert!(err.contains("waiting for \"tr.never\""), "{err}");
    let (_, after) = err
        .split_once("saved a screenshot to ")
        .unwrap_or_else(|| panic!("no screenshot named in: {err}"));
    let (png, after) = after
        .split_once(" and the page to ")
        .unwrap_or_else(|| panic!("no page named in: {err}"));
    let html = after.split_whitespace().next().unwrap_or("");
    let artifacts = p.path().join(".flowline/artifacts/rendered");
    assert!(
        std::path::Path::new(png).starts_with(&artifacts),
        "{png} is not under {}",
        artifacts.display()
    );
    let image = std::fs::read(png).expect("the screenshot exists");
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let page = std::fs::read_to_string(html).expect("the page exists");
    assert!(page.contains("<table id=\"t\">"), "{page}");
}
