//! Generates the quickstart's sample data (committed under
//! `examples/quickstart/data`): a small shop's customers (CSV), orders
//! (NDJSON, one file per month) and products (Parquet). Deterministic.
//!
//! Run: `cargo run --example gen_quickstart`

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Decimal128Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

/// A small deterministic generator (xorshift64*), enough for sample data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Margaret",
    "Dennis",
    "Radia",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus",
    "Hamilton", "Ritchie", "Perlman",
];
const COUNTRIES: &[&str] = &["GB", "US", "NL", "DE", "FR", "JP", "BR", "IN"];
const STATUSES: &[&str] = &["placed", "paid", "shipped", "delivered", "refunded"];
const CATEGORIES: &[&str] = &["books", "games", "garden", "kitchen", "music", "tools"];
const CITIES: &[&str] = &[
    "London", "Austin", "Utrecht", "Berlin", "Lyon", "Osaka", "Recife", "Pune",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/data");
    fs::create_dir_all(out.join("orders"))?;
    let mut rng = Rng(0x5EED_F10E);

    // Customers: CSV, with a few rows a real export would have wrong.
    let mut csv = String::from("id,name,email,country,signed_up_at\n");
    for id in 1..=500 {
        let name = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
        let email = format!("{}.{id}@Example.COM", name.replace(' ', ".").to_lowercase());
        let day = 1 + rng.below(28);
        let month = 1 + rng.below(6);
        writeln!(
            csv,
            "{id},{name},{email},{},2024-{month:02}-{day:02} {:02}:{:02}:00",
            rng.pick(COUNTRIES),
            rng.below(24),
            rng.below(60)
        )?;
    }
    csv.push_str("not-a-number,Broken Row,broken@example.com,GB,2024-01-01 00:00:00\n");
    fs::write(out.join("customers.csv"), csv)?;

    // Orders: NDJSON, one file per month, with a nested shipping address.
    let mut order_id = 10_000;
    for month in 1..=3 {
        let mut lines = String::new();
        for _ in 0..1000 {
            order_id += 1;
            let status = rng.pick(STATUSES);
            let amount = if status == "refunded" {
                0
            } else {
                500 + rng.below(50_000)
            };
            writeln!(
                lines,
                r#"{{"order_id":{order_id},"customer_id":{},"product_id":{},"status":"{status}","amount_cents":{amount},"ordered_at":"2024-{month:02}-{:02}T{:02}:{:02}:00Z","shipping":{{"city":"{}","express":{}}}}}"#,
                1 + rng.below(500),
                1 + rng.below(200),
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.pick(CITIES),
                rng.below(4) == 0,
            )?;
        }
        fs::write(out.join(format!("orders/2024-{month:02}.ndjson")), lines)?;
    }

    // Products: Parquet, with a decimal price.
    let n = 200;
    let ids: Vec<i64> = (1..=n).collect();
    let names: Vec<String> = ids
        .iter()
        .map(|i| format!("{} item {i}", rng.pick(CATEGORIES)))
        .collect();
    let categories: Vec<&str> = (0..n).map(|_| rng.pick(CATEGORIES)).collect();
    let prices: Vec<i128> = (0..n).map(|_| 199 + rng.below(20_000) as i128).collect();
    let in_stock: Vec<bool> = (0..n).map(|_| rng.below(5) != 0).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("product_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("price", DataType::Decimal128(10, 2), false),
        Field::new("in_stock", DataType::Boolean, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(categories)),
        Arc::new(Decimal128Array::from(prices).with_precision_and_scale(10, 2)?),
        Arc::new(BooleanArray::from(in_stock)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let file = fs::File::create(out.join("products.parquet"))?;
    let mut writer = ArrowWriter::try_new(file, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    println!("wrote sample data to {}", out.display());
    Ok(())
}
