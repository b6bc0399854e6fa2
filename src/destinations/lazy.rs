//! A warehouse opened on first use: `flowline serve` owns the project's
//! warehouse from its start (other commands go through it), but opens it
//! only when something needs it, so an idle server holds none of its
//! memory (DuckDB's extensions and buffers are about 20 MB).

use std::sync::{Arc, Mutex};

use super::{Destination, LoadSpec, QueryResult, SavedState, Warehouse};
use crate::core::error::Result;
use crate::core::table::TableName;

/// Opens the real warehouse.
type Open = Box<dyn Fn() -> Result<Box<dyn Warehouse>> + Send + Sync>;

/// A [`Warehouse`] that opens itself with `open` when first used. A failed
/// open is reported to that use and tried again at the next.
pub struct LazyWarehouse {
    open: Open,
    opened: Mutex<Option<Arc<dyn Warehouse>>>,
}

impl LazyWarehouse {
    /// A warehouse that `open` opens when first needed.
    pub fn new(open: impl Fn() -> Result<Box<dyn Warehouse>> + Send + Sync + 'static) -> Self {
        LazyWarehouse {
            open: Box::new(open),
            opened: Mutex::new(None),
        }
    }

    /// Whether it has been opened yet.
    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<dyn Warehouse>>> {
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The warehouse, opened now when it was not yet.
    fn get(&self) -> Result<Arc<dyn Warehouse>> {
        let mut opened = self.lock();
        if let Some(warehouse) = opened.as_ref() {
            return Ok(warehouse.clone());
        }
        let warehouse: Arc<dyn Warehouse> = Arc::from((self.open)()?);
        *opened = Some(warehouse.clone());
        Ok(warehouse)
    }
}

impl Warehouse for LazyWarehouse {
    fn destination(&self, load: LoadSpec) -> Result<Box<dyn Destination>> {
        self.get()?.destination(load)
    }

    fn query(&self, sql: &str) -> Result<QueryResult> {
        self.get()?.query(sql)
    }

    fn execute(&self, statements: &[String]) -> Result<()> {
        self.get()?.execute(statements)
    }

    fn saved_state(&self, pipeline: &str) -> Result<Option<SavedState>> {
        self.get()?.saved_state(pipeline)
    }

    fn reset_state(&self, pipeline: &str) -> Result<bool> {
        self.get()?.reset_state(pipeline)
    }

    fn table_exists(&self, table: &TableName) -> Result<bool> {
        self.get()?.table_exists(table)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::core::error::Error;

    #[test]
    fn it_opens_once_on_first_use_and_retries_a_failed_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.duckdb");
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        let lazy = LazyWarehouse::new(move || {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(Error::Other("not yet".into()));
            }
            let config = crate::destinations::duckdb::DuckDbConfig::default();
            let warehouse = crate::destinations::duckdb::DuckDbWarehouse::open(&path, &config)?;
            Ok(Box::new(warehouse) as Box<dyn Warehouse>)
        });
        assert!(!lazy.is_open());
        assert!(lazy.query("SELECT 1").is_err(), "the first open fails");
        let result = lazy
            .query("SELECT 42 AS answer")
            .expect("opens on the second use");
        assert_eq!(result.batches[0].num_rows(), 1);
        lazy.query("SELECT 1").expect("open");
        assert!(lazy.is_open());
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }
}
