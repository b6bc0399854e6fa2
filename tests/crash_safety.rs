//! kill -9 at several points of a load, then a re-run: no row lost, none
//! duplicated, for append, merge and replace; and for a pipeline with child
//! tables, whose rows commit with the parent's in one transaction, into
//! DuckDB and into Postgres as the warehouse.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestProject, orders_csv, run_and_kill};

const FILES: i64 = 24;
const ROWS_PER_FILE: i64 = 25_000;

fn project(write: &str) -> TestProject {
    let p = TestProject::new();
    let keys = if write == "merge" {
        "primary_key = [\"id\"]\n"
    } else {
        ""
    };
    p.write(
        "pipelines/orders.toml",
        format!(
            "[source]\nkind = \"file\"\npath = \"data/*.csv\"\nbatch_size = 5000\n\n\
             [[transform]]\nsql = \"select id, customer, amount_cents, status from input\"\n\n\
             [destination]\ntable = \"raw.orders\"\nwrite = \"{write}\"\n{keys}"
        ),
    );
    for f in 0..FILES {
        p.write(
            &format!("data/part-{f:03}.csv"),
            orders_csv(f * ROWS_PER_FILE + 1, ROWS_PER_FILE),
        );
    }
    p
}

fn assert_complete(p: &TestProject) {
    let total = FILES * ROWS_PER_FILE;
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        total,
        "row count"
    );
    assert_eq!(
        p.scalar("select count(distinct id) from raw.orders"),
        total,
        "no duplicates"
    );
    assert_eq!(
        p.scalar("select sum(id) from raw.orders"),
        total * (total + 1) / 2,
        "checksum"
    );
    assert_eq!(
        p.scalar("select sum(amount_cents) from raw.orders"),
        (1..=total).map(|id| id * 3 % 10_000).sum::<i64>(),
        "checksum of values"
    );
}

fn kill_at_several_points_then_rerun(write: &str) {
    let p = project(write);
    let mut killed = 0;
    for delay_ms in [40, 120, 250, 400, 700, 1000, 1500] {
        if run_and_kill(&p, Duration::from_millis(delay_ms)) {
            killed += 1;
        }
        if write == "append" || write == "merge" {
            // Whatever is committed so far is whole files, never part of one.
            let rows = p.query(
                "select count(*) as n from information_schema.tables where table_name = 'orders'",
            );
            if rows[0]["n"] == 1 {
                let n = p.scalar("select count(*) from raw.orders");
                assert_eq!(
                    n % ROWS_PER_FILE,
                    0,
                    "partial file committed after kill at {delay_ms}ms"
                );
            }
        }
    }
    assert!(
        killed > 0,
        "no run was killed mid-load; the data set is too small for this machine"
    );
    p.ok(&["run"]);
    assert_complete(&p);
    p.ok(&["run"]);
    assert_complete(&p);
}

#[test]
fn append_survives_kill_9() {
    kill_at_several_points_then_rerun("append");
}

#[test]
fn merge_survives_kill_9() {
    kill_at_several_points_then_rerun("merge");
}

#[test]
fn replace_survives_kill_9() {
    kill_at_several_points_then_rerun("replace");
}

/// A Postgres table read into DuckDB, killed at several points: the load is
/// one transaction with its cursor, so a re-run completes it exactly.
fn postgres_kill_9_then_rerun(write: &str) {
    let Some(db) = common::PgDatabase::create() else {
        return;
    };
    let rows: i64 = 400_000;
    db.execute(&format!(
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text, amount numeric(12,2));
         INSERT INTO events SELECT g, md5(g::text), g / 100.0 FROM generate_series(1, {rows}) g;"
    ));
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"k\"\n[connections.pg]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    let keys = if write == "merge" {
        "primary_key = [\"id\"]\n"
    } else {
        ""
    };
    p.write(
        "pipelines/orders.toml",
        format!(
            "[source]\nkind = \"postgres\"\nconnection = \"pg\"\ntable = \"events\"\nbatch_size = 10000\n\
             incremental = {{ cursor = \"id\" }}\n\n[destination]\ntable = \"raw.orders\"\nwrite = \"{write}\"\n{keys}"
        ),
    );
    let mut killed = 0;
    for delay_ms in [60, 200, 450, 800, 1200] {
        if run_and_kill(&p, Duration::from_millis(delay_ms)) {
            killed += 1;
        }
    }
    assert!(killed > 0, "no run was killed mid-load");
    for _ in 0..2 {
        p.ok(&["run"]);
        assert_eq!(p.scalar("select count(*) from raw.orders"), rows);
        assert_eq!(p.scalar("select count(distinct id) from raw.orders"), rows);
        assert_eq!(
            p.scalar("select sum(id) from raw.orders"),
            rows * (rows + 1) / 2
        );
    }
}

#[test]
fn postgres_append_survives_kill_9() {
    postgres_kill_9_then_rerun("append");
}

#[test]
fn postgres_merge_survives_kill_9() {
    postgres_kill_9_then_rerun("merge");
}

#[test]
fn postgres_replace_survives_kill_9() {
    postgres_kill_9_then_rerun("replace");
}

// Child tables: an HTTP API whose records have an array of lines (unnested
// into `orders__lines`) and a notes resource each (`orders__notes`). The
// pipeline's table, its child tables and its cursor commit in one
// transaction, so after a kill at any point every committed order has all
// of its lines and notes, no line or note is without its order, and a
// re-run completes the load exactly.

/// Orders per page of the API.
const PAGE_SIZE: usize = 40;
/// How long the API takes for each page, so that kills land mid-load.
const PAGE_DELAY: Duration = Duration::from_millis(25);
/// Orders the API holds at first; as many are added later.
const ORDERS: i64 = 1_200;

/// One order as the API serves it.
#[derive(Debug, Clone, Copy)]
struct Order {
    id: i64,
    /// The incremental cursor: rises with every change.
    seq: i64,
    amount: i64,
}

/// Lines of order `id` (none for every fourth).
fn lines_of(id: i64) -> i64 {
    id % 4
}

/// Notes of order `id`.
fn notes_of(id: i64) -> i64 {
    1 + id % 2
}

impl Order {
    fn new(id: i64) -> Self {
        Order {
            id,
            seq: id,
            amount: id * 3,
        }
    }

    fn json(&self) -> serde_json::Value {
        let lines: Vec<serde_json::Value> = (0..lines_of(self.id))
            .map(|k| serde_json::json!({"sku": format!("s{}-{k}", self.id), "qty": k + 1}))
            .collect();
        serde_json::json!({"id": self.id, "seq": self.seq, "amount": self.amount, "lines": lines})
    }
}

/// The orders API, served for one test.
struct Api {
    base: String,
    orders: Arc<Mutex<Vec<Order>>>,
    /// Empty pages served. Each ends a run's reading: the run's last
    /// writes and its commit follow at once.
    last_pages: Arc<AtomicUsize>,
}

impl Api {
    /// Serves `orders`: `/orders?since=SEQ&page=N` pages through those
    /// changed after `since`, in `seq` order; `/orders/{id}/notes` has each
    /// one's notes.
    fn serve(orders: Vec<Order>) -> Api {
        use axum::extract::{Path, Query};
        use axum::routing::get;
        let orders = Arc::new(Mutex::new(orders));
        let last_pages = Arc::new(AtomicUsize::new(0));
        let (all, ends) = (orders.clone(), last_pages.clone());
        let list = move |Query(q): Query<std::collections::HashMap<String, String>>| {
            let (orders, last_pages) = (all.clone(), ends.clone());
            async move {
                tokio::time::sleep(PAGE_DELAY).await;
                let number = |name: &str, default: i64| {
                    q.get(name)
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(default)
                };
                let since = number("since", 0);
                let page = number("page", 1).max(1) as usize;
                let records: Vec<serde_json::Value> = orders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .filter(|o| o.seq > since)
                    .skip((page - 1) * PAGE_SIZE)
                    .take(PAGE_SIZE)
                    .map(Order::json)
                    .collect();
                if records.is_empty() {
                    last_pages.fetch_add(1, Ordering::SeqCst);
                }
                axum::Json(serde_json::Value::Array(records))
            }
        };
        let notes = |Path(id): Path<i64>| async move {
            let notes: Vec<serde_json::Value> = (0..notes_of(id))
                .map(|k| serde_json::json!({"note_id": id * 10 + k, "text": format!("note {k} of {id}")}))
                .collect();
            axum::Json(serde_json::json!({ "notes": notes }))
        };
        let router = axum::Router::new()
            .route("/orders", get(list))
            .route("/orders/{id}/notes", get(notes));
        Api {
            base: common::serve_http(router),
            orders,
            last_pages,
        }
    }
}

/// The warehouse a child-table crash test loads.
enum Warehouse {
    Duckdb,
    Postgres(common::PgDatabase),
}

/// A project loading the orders API at `base` into `raw.orders` and its
/// child tables with `write` (append or merge).
fn orders_project(base: &str, write: &str, warehouse: &Warehouse) -> TestProject {
    let p = TestProject::new();
    if let Warehouse::Postgres(db) = warehouse {
        p.write(
            "flowline.toml",
            format!(
                "[project]\nname = \"children\"\n\n[warehouse]\nkind = \"postgres\"\nconnection = \"wh\"\n\n\
                 [connections.wh]\nurl = \"{}\"\n",
                db.url()
            ),
        );
    }
    let (key, child_key) = if write == "merge" {
        ("primary_key = [\"id\"]\n", "primary_key = [\"note_id\"]\n")
    } else {
        ("", "")
    };
    p.write(
        "pipelines/orders.toml",
        format!(
            "[source]\nkind = \"http\"\nurl = \"{base}/orders\"\npaginate = {{ kind = \"page\" }}\n\
             incremental = {{ cursor = \"seq\", param = \"since\" }}\nunnest = [\"lines\"]\nbatch_size = 200\n\n\
             [[source.children]]\nname = \"notes\"\nurl = \"/orders/{{id}}/notes\"\nrecords = \"notes\"\n{child_key}\n\
             [destination]\ntable = \"raw.orders\"\nwrite = \"{write}\"\n{key}"
        ),
    );
    p
}

/// What the tables of a load hold, as counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loaded {
    orders: i64,
    lines: i64,
    notes: i64,
}

impl Loaded {
    /// What loading every order with id `1..=last` gives.
    fn through(last: i64) -> Self {
        Loaded {
            orders: last,
            lines: (1..=last).map(lines_of).sum(),
            notes: (1..=last).map(notes_of).sum(),
        }
    }
}

/// Rows in `raw.<table>`, 0 when it does not exist.
fn rows_in(p: &TestProject, table: &str) -> i64 {
    let exists = p.scalar(&format!(
        "select count(*) from information_schema.tables \
         where table_schema = 'raw' and table_name = '{table}'"
    ));
    if exists == 0 {
        0
    } else {
        p.scalar(&format!("select count(*) from raw.{table}"))
    }
}

/// The counts in the warehouse, after checking that they hang together:
/// every order has all its lines and notes, none is left without its order.
fn loaded_consistently(p: &TestProject, when: &str) -> Loaded {
    let loaded = Loaded {
        orders: rows_in(p, "orders"),
        lines: rows_in(p, "orders__lines"),
        notes: rows_in(p, "orders__notes"),
    };
    if loaded.orders == 0 {
        assert_eq!(
            loaded,
            Loaded {
                orders: 0,
                lines: 0,
                notes: 0
            },
            "{when}: child rows committed without their orders"
        );
        return loaded;
    }
    assert_eq!(
        p.scalar(
            "select count(*) from raw.orders o where \
             (select count(*) from raw.orders__lines l where l._parent_id = o.id) <> o.id % 4 \
             or (select count(*) from raw.orders__notes n where n._parent_id = o.id) <> 1 + o.id % 2"
        ),
        0,
        "{when}: orders committed without exactly their lines and notes ({loaded:?})"
    );
    for child in ["orders__lines", "orders__notes"] {
        assert_eq!(
            p.scalar(&format!(
                "select count(*) from raw.{child} c \
                 where not exists (select 1 from raw.orders o where o.id = c._parent_id)"
            )),
            0,
            "{when}: {child} rows committed without their order ({loaded:?})"
        );
    }
    loaded
}

/// The final state of a phase: exactly `expected`, no duplicates, and the
/// amounts the API serves.
fn assert_loaded_exactly(p: &TestProject, expected: Loaded, amounts: i64, when: &str) {
    assert_eq!(loaded_consistently(p, when), expected, "{when}: row counts");
    assert_eq!(
        p.scalar("select count(distinct id) from raw.orders"),
        expected.orders,
        "{when}: duplicate orders"
    );
    assert_eq!(
        p.scalar(
            "select count(*) from (select distinct _parent_id, _index from raw.orders__lines) d"
        ),
        expected.lines,
        "{when}: duplicate lines"
    );
    assert_eq!(
        p.scalar("select count(distinct note_id) from raw.orders__notes"),
        expected.notes,
        "{when}: duplicate notes"
    );
    assert_eq!(
        p.scalar("select sum(amount) from raw.orders"),
        amounts,
        "{when}: amounts"
    );
}

/// A small random number generator (xorshift), seeded from the clock.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(7);
        Random(nanos | 1)
    }

    /// A duration between `low` and `high`.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = high.saturating_sub(low).as_micros().max(1) as u64;
        low + Duration::from_micros(self.0 % span)
    }
}

/// How long one whole run of the API takes here (into a scratch DuckDB
/// warehouse), so that kills spread over a whole run.
fn one_run_takes(api: &Api, write: &str) -> Duration {
    let scratch = orders_project(&api.base, write, &Warehouse::Duckdb);
    let started = Instant::now();
    scratch.ok(&["run"]);
    started.elapsed()
}

/// Where in a run a kill lands.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// This long after the start.
    After(Duration),
    /// This long after the API served the run its last page: during its
    /// last writes and its commit.
    AfterLastPage(Duration),
}

/// Starts `flowline run` and kills it with SIGKILL at `point` if it is
/// still running; whether it was killed.
fn run_and_kill_at(p: &TestProject, api: &Api, point: KillPoint) -> bool {
    let delay = match point {
        KillPoint::After(delay) => delay,
        KillPoint::AfterLastPage(delay) => {
            let seen = api.last_pages.load(Ordering::SeqCst);
            let mut child = p
                .command(&["run"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn");
            while api.last_pages.load(Ordering::SeqCst) == seen {
                if child.try_wait().expect("wait").is_some() {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(delay);
            let killed = child.try_wait().expect("wait").is_none();
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return killed;
        }
    };
    run_and_kill(p, delay)
}

/// Kills `flowline run` at random points of a load, each time checking that
/// what is committed hangs together and is `before` or `after`; then runs it
/// to the end twice: exactly `after` is loaded.
fn kill_at_random_points_then_rerun(
    p: &TestProject,
    api: &Api,
    run: Duration,
    loads: (Loaded, Loaded),
    amounts: i64,
    phase: &str,
) {
    let (before, after) = loads;
    // Random points sweeping a run from its start, then random points
    // during its last writes and commit. A run that ends before its kill
    // commits everything, and the runs after it have nothing left to load:
    // hence early points first.
    let mut random = Random::new();
    let mut during: Vec<Duration> = (0..4).map(|_| random.between(run / 20, run)).collect();
    during.sort();
    let mut at_end: Vec<Duration> = (0..4)
        .map(|_| random.between(Duration::ZERO, Duration::from_millis(40)))
        .collect();
    at_end.sort();
    let points: Vec<KillPoint> = during
        .into_iter()
        .map(KillPoint::After)
        .chain(at_end.into_iter().map(KillPoint::AfterLastPage))
        .collect();
    let mut killed_mid_load = 0;
    for (n, point) in points.iter().enumerate() {
        let killed = run_and_kill_at(p, api, *point);
        let when = format!("{phase}, kill {} of {points:?}", n + 1);
        let loaded = loaded_consistently(p, &when);
        assert!(
            loaded == before || loaded == after,
            "{when}: {loaded:?} is neither {before:?} nor {after:?}"
        );
        if killed && loaded == before {
            killed_mid_load += 1;
        }
    }
    assert!(
        killed_mid_load > 0,
        "{phase}: no run was killed mid-load (kills at {points:?})"
    );
    for attempt in ["re-run", "second re-run"] {
        p.ok(&["run"]);
        let when = format!("{phase}, {attempt} after kills at {points:?}");
        assert_loaded_exactly(p, after, amounts, &when);
    }
}

/// Loads the orders API with child tables into `warehouse` with `write`,
/// killed at random points, in two phases: the first orders, then as many
/// again (and, for merge, changes to a quarter of the first).
fn children_survive_kill_9(write: &str, warehouse: Warehouse) {
    let api = Api::serve((1..=ORDERS).map(Order::new).collect());
    let run = one_run_takes(&api, write);
    let p = orders_project(&api.base, write, &warehouse);

    let first = Loaded::through(ORDERS);
    let amounts: i64 = (1..=ORDERS).map(|id| id * 3).sum();
    let loads = (Loaded::through(0), first);
    kill_at_random_points_then_rerun(&p, &api, run, loads, amounts, "first load");

    let mut amounts: i64 = (1..=2 * ORDERS).map(|id| id * 3).sum();
    {
        let mut orders = api.orders.lock().expect("orders");
        orders.extend((ORDERS + 1..=2 * ORDERS).map(Order::new));
        if write == "merge" {
            // Changed orders come again with a higher cursor; they update
            // in place, their lines and notes too.
            for id in 1..=ORDERS / 4 {
                orders.push(Order {
                    id,
                    seq: 2 * ORDERS + id,
                    amount: id * 7,
                });
                amounts += id * 4;
            }
        }
    }
    let loads = (first, Loaded::through(2 * ORDERS));
    kill_at_random_points_then_rerun(&p, &api, run, loads, amounts, "second load");
}

#[test]
fn child_tables_append_survives_kill_9() {
    children_survive_kill_9("append", Warehouse::Duckdb);
}

#[test]
fn child_tables_merge_survives_kill_9() {
    children_survive_kill_9("merge", Warehouse::Duckdb);
}

#[test]
fn child_tables_append_into_postgres_survives_kill_9() {
    let Some(db) = common::PgDatabase::create() else {
        return;
    };
    children_survive_kill_9("append", Warehouse::Postgres(db));
}

#[test]
fn child_tables_merge_into_postgres_survives_kill_9() {
    let Some(db) = common::PgDatabase::create() else {
        return;
    };
    children_survive_kill_9("merge", Warehouse::Postgres(db));
}
