//! The transactional load core of the SQL warehouses (DuckDB, Postgres).
//!
//! One load writes a pipeline's table and its child tables over one
//! connection, in one transaction that also holds the pipeline's state row:
//! a crash anywhere leaves either all of a commit or none of it. The state
//! machine is written here once:
//!
//! 1. begin (the schema is created first, outside the transaction);
//! 2. per batch: conform it to the table without changing a value (cast a
//!    column whose values the table's type holds exactly; otherwise widen
//!    the table's column, or under `strict` hand the rows back as dead
//!    letters), prepare the table (create it, or add columns as
//!    [`crate::data::evolve::plan`] says), then bulk-append the batch, or
//!    stage it and merge, deduplicate or insert it by name;
//! 3. dead letters, the source's and the load's, go into the same
//!    transaction;
//! 4. commit: `replace` tables take the place of the old ones, the state row
//!    is saved, everything becomes visible at once; or roll back.
//!
//! A warehouse supplies a [`SqlConnection`]: how it runs SQL, reads a table's
//! columns, bulk-appends a batch and saves state, and how it spells SQL (its
//! [`Dialect`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::{Destination, KeySql, LoadSpec, SchemaPolicy, TableName, WriteMode, Written};
use crate::core::error::{Error, Result};
use crate::core::{DeadLetter, FileScan};
use crate::data::conform::{cast_exact, nested_as_json};
use crate::data::evolve::{Change, decimal, fits, plan, supertype, unquoted};
use crate::data::types::arrow_type;

/// Splits off the rows whose match key (see [`LoadSpec::match_keys`]) has
/// a NULL, as dead letters: `=` matches no NULL, so `merge` or `dedupe_key`
/// would insert such a row again on every run.
fn reject_null_keys(spec: &LoadSpec, batch: RecordBatch) -> Result<(RecordBatch, Vec<DeadLetter>)> {
    let mut reasons: Vec<Option<String>> = vec![None; batch.num_rows()];
    for key in spec.match_keys() {
        let Ok(index) = batch.schema().index_of(key) else {
            continue;
        };
        let column = batch.column(index);
        for (row, reason) in reasons.iter_mut().enumerate() {
            if column.is_null(row) {
                reason.get_or_insert_with(|| {
                    format!(
                        "key column \"{key}\" is NULL: rows are matched on their key and NULL \
                         matches nothing, so this row would be inserted again by every run"
                    )
                });
            }
        }
    }
    if reasons.iter().all(Option::is_none) {
        return Ok((batch, Vec::new()));
    }
    split_rejected(spec, batch.clone(), &batch, &reasons)
}

/// Splits `batch` into the rows without a reason, kept, and dead letters
/// for the rows with one; their raw text comes from `original`, the same
/// rows as the source sent them.
fn split_rejected(
    spec: &LoadSpec,
    batch: RecordBatch,
    original: &RecordBatch,
    reasons: &[Option<String>],
) -> Result<(RecordBatch, Vec<DeadLetter>)> {
    let rejected = BooleanArray::from(reasons.iter().map(Option::is_some).collect::<Vec<_>>());
    let raw = crate::data::convert::rows_as_json(
        &arrow::compute::filter_record_batch(original, &rejected)
            .map_err(|e| Error::arrow("setting rejected rows aside", e))?,
    )?;
    let letters = reasons
        .iter()
        .flatten()
        .zip(raw)
        .map(|(reason, raw)| DeadLetter {
            origin: spec.table.to_string(),
            reason: reason.clone(),
            raw,
        })
        .collect();
    let keep = arrow::compute::not(&rejected).map_err(|e| Error::arrow("keeping rows", e))?;
    let batch = arrow::compute::filter_record_batch(&batch, &keep)
        .map_err(|e| Error::arrow("keeping rows", e))?;
    Ok((batch, letters))
}

/// The canonical type of text, which holds any value.
const TEXT: &str = "VARCHAR";

/// Why `strict` rejects a row: its value in `column` is not one a column of
/// `table_type` of `table` holds exactly.
fn strict_reason(
    column: &str,
    table_type: &str,
    table: &TableName,
    value: &ArrayRef,
    row: usize,
) -> String {
    let mut value = arrow::util::display::array_value_to_string(value, row).unwrap_or_default();
    if value.len() > 60 {
        let cut = (0..=60)
            .rev()
            .find(|&i| value.is_char_boundary(i))
            .unwrap_or(0);
        value.truncate(cut);
        value.push_str("...");
    }
    format!(
        "column \"{column}\" is {table_type} in table {table}, which cannot hold {value} exactly; \
         schema = \"strict\" keeps the table's types (the default, \"evolve\", widens the column)"
    )
}

/// Whether every value of type `source` is exactly a value of type
/// `target`, so no value needs checking. Integers in a floating-point
/// column, and finer timestamps in coarser ones, do not.
fn exact_by_type(target: &str, source: &str) -> bool {
    let float = |t: &str| t == "FLOAT" || t == "DOUBLE";
    let timestamp = |t: &str| t.starts_with("TIMESTAMP");
    if target == TEXT {
        return true;
    }
    if !fits(target, source) || float(target) && !float(source) {
        return false;
    }
    !(timestamp(target) && timestamp(source) && target != source)
}

/// Whether a double holds every value a column of `table_type` can hold:
/// `None` when that depends on the values (integers beyond 2^53).
fn doubles_hold(table_type: &str) -> Option<bool> {
    match table_type {
        "BIGINT" | "UBIGINT" | "HUGEINT" | "UHUGEINT" => None,
        // Up to 15 significant digits survive a double's round trip.
        t => Some(decimal(t).is_none_or(|(precision, _)| precision <= 15)),
    }
}

/// The staging table a batch goes through to be merged, deduplicated or
/// inserted by name: temporary, so one per connection.
pub(crate) const STAGE: &str = "_flowline_stage";

/// The rows an upsert without MERGE inserts, with the values it keeps.
const MERGED: &str = "_flowline_merged";

/// A table's columns as (name, canonical type). Canonical types are spelled
/// as DuckDB spells them, which is what schema evolution compares.
pub(crate) type Columns = Vec<(String, String)>;

/// Where a bulk append goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A table of the warehouse.
    Table(&'a TableName),
    /// The connection's staging table, [`STAGE`].
    Stage,
}

/// How a warehouse spells SQL: identifiers, types, and the statements whose
/// syntax differs between warehouses. Nothing here talks to the server.
pub(crate) trait Dialect {
    /// `name` as a quoted identifier.
    fn quote(&self, name: &str) -> String;

    /// The schema of `table`, quoted.
    fn schema(&self, table: &TableName) -> String;

    /// `table`, schema-qualified and quoted.
    fn qualified(&self, table: &TableName) -> String {
        format!("{}.{}", self.schema(table), self.quote(&table.table))
    }

    /// The columns of a batch with `schema`, as this warehouse stores them.
    fn batch_columns(&self, schema: &Schema) -> Columns;

    /// The SQL spelling of a canonical type.
    fn type_sql(&self, canonical: &str) -> String;

    /// Statements that (re)create the empty staging table with the column
    /// `definitions`.
    fn create_stage(&self, definitions: &str) -> String;

    /// The statement changing the type of `column` of table `qualified`
    /// from canonical type `from` to `to` (spelled by [`Dialect::type_sql`]);
    /// nested values widened to text become JSON.
    fn widen_column(&self, qualified: &str, column: &str, from: &str, to: &str) -> String;

    /// A query of the staged rows (alias-free, columns `list`) with one row
    /// per key: the last staged of each.
    fn latest_per_key(&self, keys: &KeySql, list: &str) -> String;

    /// The statement inserting into `target` the staged rows whose key is not
    /// there yet, the first staged of each key.
    fn insert_new(&self, target: &str, keys: &KeySql, list: &str) -> String;

    /// Whether a bulk append names its columns (so a batch with some of the
    /// table's columns, in any order, appends directly), or needs exactly
    /// the table's columns in their order.
    fn appends_by_name(&self) -> bool;

    /// `replace`: whether an existing table is kept and refilled (so views,
    /// grants and indexes on it survive), rather than dropped for the new
    /// table renamed into its place.
    fn refills_on_replace(&self) -> bool;
}

/// A connection to a SQL warehouse, as the load core drives it. Every
/// method runs inside the load's transaction when one is open.
pub(crate) trait SqlConnection: Dialect + Send {
    /// Runs one or more statements; `context` says what for (and on which
    /// table), for the error.
    fn execute(&self, sql: &str, context: &str) -> Result<()>;

    /// Runs one statement and returns how many rows it inserted, updated
    /// or deleted.
    fn execute_counting(&self, sql: &str, context: &str) -> Result<u64>;

    /// Whether the query `sql` returns at least one row.
    fn any_row(&self, sql: &str, context: &str) -> Result<bool>;

    /// The columns of `table` in order, or `None` when it does not exist.
    fn columns(&self, table: &TableName) -> Result<Option<Columns>>;

    /// Appends `batch` in bulk (an appender, COPY) to `target`, whose columns
    /// fit the batch (see [`Dialect::appends_by_name`]).
    fn append(&self, target: Target<'_>, batch: RecordBatch) -> Result<()>;

    /// Whether the server runs `MERGE` (asked once per load).
    fn supports_merge(&self) -> Result<bool>;

    /// Saves `state` as `pipeline`'s progress, committed by `run_id`.
    fn save_state(&self, pipeline: &str, run_id: &str, state: &str) -> Result<()>;

    /// Records rows a source rejected.
    fn insert_dead_letters(
        &self,
        pipeline: &str,
        run_id: &str,
        letters: &[DeadLetter],
    ) -> Result<()>;

    /// Whether this warehouse reads whole files itself
    /// ([`SqlConnection::select_file`]). Default: `false`.
    fn reads_files(&self) -> bool {
        false
    }

    /// A query of the whole file `scan`, read inside the warehouse: one
    /// column per column of the file, each value converted exactly or the
    /// query fails. `None` when this warehouse cannot read such a file (the
    /// default).
    fn select_file(&self, scan: &FileScan) -> Option<String> {
        let _ = scan;
        None
    }

    /// Called with `true` before the statement inserting a
    /// [`SqlConnection::select_file`] query runs, and with `false` once it
    /// ran (and, when it failed, its transaction was rolled back): the
    /// source waits meanwhile, so the warehouse may take its cores.
    /// Default: nothing.
    fn reading_file(&self, reading: bool) -> Result<()> {
        let _ = reading;
        Ok(())
    }

    /// Rewrites a batch into types the warehouse loads, before anything
    /// looks at its schema. Default: as it is.
    fn normalize(&self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(batch)
    }
}

/// One table a load writes: the pipeline's own, or one of its child tables.
struct Table {
    /// The child table's name; `None` for the pipeline's own table.
    child: Option<String>,
    spec: LoadSpec,
    /// The columns of the table written, once read in this transaction.
    columns: Option<Columns>,
    /// `replace`: the new table was created in this transaction.
    building: bool,
}

impl Table {
    fn new(child: Option<String>, spec: LoadSpec) -> Self {
        Table {
            child,
            spec,
            columns: None,
            building: false,
        }
    }

    /// What the load was doing, and on which table, for an error.
    fn context(&self, what: &str) -> String {
        format!("{what} ({})", self.spec.table)
    }

    /// Writes one batch (already normalized) into the table; `merge` says
    /// whether the server runs MERGE, asked only for an upserting load.
    fn write<C: SqlConnection>(
        &mut self,
        conn: &C,
        batch: RecordBatch,
        merge: impl FnOnce() -> Result<bool>,
    ) -> Result<Written> {
        let table = self.spec.write_table();
        let name = conn.qualified(&table);
        if self.spec.write == WriteMode::Replace && !self.building {
            conn.execute(
                &format!("DROP TABLE IF EXISTS {name}"),
                &self.context("clearing the new table"),
            )?;
            self.columns = None;
            self.building = true;
        }
        self.spec.check_keys(&batch.schema())?;
        let (batch, dead_letters) = self.conform(conn, &table, &name, batch)?;
        let mut written = Written {
            dead_letters,
            ..Written::default()
        };
        if batch.num_rows() == 0 {
            return Ok(written);
        }
        let rows = batch.num_rows() as u64;
        let source = conn.batch_columns(&batch.schema());
        let columns = self.prepare(conn, &table, &name, &source)?;
        let list = source
            .iter()
            .map(|(n, _)| conn.quote(n))
            .collect::<Vec<_>>()
            .join(", ");
        written.rows = if self.spec.upserts() {
            stage(conn, &source, batch)?;
            let keys = KeySql::new(&self.spec.primary_key, |k| conn.quote(k));
            let latest = conn.latest_per_key(&keys, &list);
            if merge()? {
                let sql = merge_sql(conn, &name, &latest, &keys, &source, &self.spec.primary_key);
                conn.execute_counting(&sql, &self.context("merging"))?
            } else {
                self.replace_keys(conn, &name, &latest, &keys, &columns, &source)?
            }
        } else if self.spec.dedupes() {
            stage(conn, &source, batch)?;
            let keys = KeySql::new(&self.spec.dedupe_key, |k| conn.quote(k));
            conn.execute_counting(
                &conn.insert_new(&name, &keys, &list),
                &self.context("inserting new rows"),
            )?
        } else if fits_directly(conn, &columns, &source) {
            conn.append(Target::Table(&table), batch)?;
            rows
        } else {
            stage(conn, &source, batch)?;
            conn.execute(
                &format!("INSERT INTO {name} ({list}) SELECT {list} FROM {STAGE}"),
                &self.context("inserting staged rows"),
            )?;
            rows
        };
        written.duplicates = rows.saturating_sub(written.rows);
        Ok(written)
    }

    /// Upserts the rows of `latest` (one per key) into table `name` (with
    /// `columns`) by deleting the rows of their keys and inserting them, the
    /// columns the batch lacks carried over from the deleted rows: what
    /// MERGE does, for servers without it and for DuckDB, which keeps a
    /// transaction's updated values in memory but writes inserted rows out.
    fn replace_keys<C: SqlConnection>(
        &self,
        conn: &C,
        name: &str,
        latest: &str,
        keys: &KeySql,
        columns: &Columns,
        source: &Columns,
    ) -> Result<u64> {
        let kept: Vec<String> = columns
            .iter()
            .filter(|(c, _)| !source.iter().any(|(s, _)| s.eq_ignore_ascii_case(c)))
            .map(|(c, _)| conn.quote(c))
            .collect();
        let loaded: Vec<String> = source.iter().map(|(c, _)| conn.quote(c)).collect();
        let rows = if kept.is_empty() {
            format!("SELECT * FROM ({latest}) s")
        } else {
            // The old values of the columns the load lacks, before the delete.
            conn.execute(
                &format!(
                    "DROP TABLE IF EXISTS {MERGED}; CREATE TEMP TABLE {MERGED} AS \
                     SELECT {}, {} FROM ({latest}) s LEFT JOIN {name} t ON {}",
                    loaded
                        .iter()
                        .map(|c| format!("s.{c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    kept.iter()
                        .map(|c| format!("t.{c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    keys.join
                ),
                &self.context("merging (keeping columns the load lacks)"),
            )?;
            format!("SELECT * FROM {MERGED}")
        };
        conn.execute(
            &format!("DELETE FROM {name} t USING {STAGE} s WHERE {}", keys.join),
            &self.context("merging (delete)"),
        )?;
        let all: Vec<String> = loaded.into_iter().chain(kept).collect();
        conn.execute_counting(
            &format!("INSERT INTO {name} ({}) {rows}", all.join(", ")),
            &self.context("merging (insert)"),
        )
    }

    /// Makes the columns of `batch` fit the existing table `table` (quoted
    /// `name`) without changing a value. A column whose values the table's
    /// column holds exactly is cast to its type. Otherwise, under `evolve`
    /// (and for the table `replace` builds), the table's column is widened
    /// to a type that holds its values and the batch's exactly; under
    /// `strict`, the rows with such values are returned as dead letters and
    /// the others kept. New columns are left to [`Table::prepare`].
    fn conform<C: SqlConnection>(
        &mut self,
        conn: &C,
        table: &TableName,
        name: &str,
        batch: RecordBatch,
    ) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        let existing = match self.columns.take() {
            Some(columns) => Some(columns),
            None => conn.columns(table)?,
        };
        let Some(mut columns) = existing else {
            return Ok((batch, Vec::new()));
        };
        let widen =
            self.spec.write == WriteMode::Replace || self.spec.schema == SchemaPolicy::Evolve;
        let original = batch.clone();
        let schema = batch.schema();
        let source = conn.batch_columns(&schema);
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut arrays = batch.columns().to_vec();
        let mut changes = Vec::new();
        let mut rejected: Vec<Option<String>> = vec![None; batch.num_rows()];
        let mut dropped = Vec::new();
        for (i, (column, source_type)) in source.iter().enumerate() {
            let Some((table_column, table_type)) = columns
                .iter_mut()
                .find(|(c, _)| c.eq_ignore_ascii_case(column))
            else {
                continue;
            };
            let nested = fields[i].data_type().is_nested();
            if nested
                && unquoted(table_type) != unquoted(source_type)
                && (widen || table_type == TEXT)
            {
                // An object or a list where the table holds something else:
                // the column becomes text, the values JSON.
                if table_type != TEXT {
                    changes.push(Change::Widen {
                        column: table_column.clone(),
                        from: table_type.clone(),
                        to: TEXT.into(),
                    });
                    *table_type = TEXT.into();
                }
                arrays[i] = nested_as_json(&arrays[i])?;
                fields[i] = Field::new(fields[i].name(), DataType::Utf8, true);
                continue;
            }
            if exact_by_type(table_type, source_type) {
                continue;
            }
            let cast = arrow_type(table_type)
                .and_then(|to| cast_exact(&arrays[i], &to).map(|cast| (to, cast)));
            let Some((to, cast)) = cast else {
                // Nested and other types: `evolve` leaves the widening to
                // the plan; `strict` rejects every row with a value there.
                if !widen {
                    for (row, reason) in rejected.iter_mut().enumerate() {
                        if arrays[i].is_valid(row) {
                            reason.get_or_insert_with(|| {
                                strict_reason(column, table_type, &self.spec.table, &arrays[i], row)
                            });
                        }
                    }
                    dropped.push(i);
                }
                continue;
            };
            if cast.misfits.is_empty() {
                arrays[i] = cast.array;
                fields[i] = Field::new(fields[i].name(), to, true);
            } else if widen {
                let wider = self.wider(
                    conn,
                    name,
                    table_column,
                    table_type,
                    source_type,
                    &arrays[i],
                )?;
                changes.push(Change::Widen {
                    column: table_column.clone(),
                    from: table_type.clone(),
                    to: wider.clone(),
                });
                *table_type = wider;
            } else {
                for row in cast.misfits {
                    rejected[row].get_or_insert_with(|| {
                        strict_reason(column, table_type, &self.spec.table, &arrays[i], row)
                    });
                }
                arrays[i] = cast.array;
                fields[i] = Field::new(fields[i].name(), to, true);
            }
        }
        self.apply(conn, name, &changes)?;
        self.columns = Some(columns);
        for i in dropped.into_iter().rev() {
            fields.remove(i);
            arrays.remove(i);
        }
        let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let batch = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &rows)
            .map_err(|e| Error::arrow("casting a batch to the table's types", e))?;
        if rejected.iter().all(Option::is_none) {
            return Ok((batch, Vec::new()));
        }
        split_rejected(&self.spec, batch, &original, &rejected)
    }

    /// The type to widen column `column` (of type `table_type` in table
    /// `name`) to, so it holds its values and the batch's `values` (of type
    /// `source_type`) exactly: the narrowest common type, or `VARCHAR` when
    /// a number type would round one of them.
    fn wider<C: SqlConnection>(
        &self,
        conn: &C,
        name: &str,
        column: &str,
        table_type: &str,
        source_type: &str,
        values: &ArrayRef,
    ) -> Result<String> {
        let wider = supertype(table_type, source_type);
        if wider == table_type {
            // The types fit, these values do not (2^53 + 1 in a DOUBLE).
            return Ok(TEXT.into());
        }
        let batch_fits = arrow_type(&wider)
            .and_then(|to| cast_exact(values, &to))
            .is_some_and(|cast| cast.misfits.is_empty());
        if !batch_fits {
            return Ok(TEXT.into());
        }
        if wider != "DOUBLE" {
            return Ok(wider);
        }
        let holds = match doubles_hold(table_type) {
            Some(holds) => holds,
            None => {
                let c = conn.quote(column);
                let limit = "9007199254740992";
                !conn.any_row(
                    &format!("SELECT 1 FROM {name} WHERE {c} < -{limit} OR {c} > {limit} LIMIT 1"),
                    &self.context("checking the values of a column to widen"),
                )?
            }
        };
        Ok(if holds { wider } else { TEXT.into() })
    }
    /// Creates `table` (quoted `name`) with the `source` columns, or adds
    /// and widens its columns so they fit. Returns its columns afterwards.
    fn prepare<C: SqlConnection>(
        &mut self,
        conn: &C,
        table: &TableName,
        name: &str,
        source: &Columns,
    ) -> Result<Columns> {
        let existing = match self.columns.take() {
            Some(columns) => Some(columns),
            None => conn.columns(table)?,
        };
        let Some(mut columns) = existing else {
            conn.execute(
                &format!("CREATE TABLE {name} ({})", definitions(conn, source)),
                &self.context("creating the table"),
            )?;
            self.columns = Some(source.clone());
            return Ok(source.clone());
        };
        // The table being built by `replace` belongs to this load alone.
        let allow_widening =
            self.spec.write == WriteMode::Replace || self.spec.schema == SchemaPolicy::Evolve;
        let changes = plan(
            &mut columns,
            source,
            allow_widening,
            &self.spec.table.to_string(),
        )
        .map_err(|message| Error::pipeline(&self.spec.pipeline, message))?;
        self.apply(conn, name, &changes)?;
        self.columns = Some(columns.clone());
        Ok(columns)
    }

    /// Runs the `changes` schema evolution planned for table `name`.
    fn apply<C: SqlConnection>(&self, conn: &C, name: &str, changes: &[Change]) -> Result<()> {
        for change in changes {
            let (sql, what) = match change {
                Change::Add { column, sql_type } => (
                    format!(
                        "ALTER TABLE {name} ADD COLUMN {} {}",
                        conn.quote(column),
                        conn.type_sql(sql_type)
                    ),
                    "adding a column",
                ),
                Change::Widen { column, from, to } => (
                    conn.widen_column(name, column, from, &conn.type_sql(to)),
                    "widening a column",
                ),
            };
            conn.execute(&sql, &self.context(what))?;
            tracing::info!(pipeline = %self.spec.pipeline, "{}: {change}", self.spec.table);
        }
        Ok(())
    }

    /// At commit, for `replace`: the table built in this transaction takes
    /// the target's place, or with no rows loaded the target is emptied.
    fn finish_replace<C: SqlConnection>(&self, conn: &C) -> Result<()> {
        if self.spec.write != WriteMode::Replace {
            return Ok(());
        }
        let target = &self.spec.table;
        let name = conn.qualified(target);
        if !self.building {
            if conn.columns(target)?.is_some() {
                conn.execute(
                    &format!("DELETE FROM {name}"),
                    &self.context("emptying the table"),
                )?;
            }
            return Ok(());
        }
        let new_table = self.spec.write_table();
        let new = conn.qualified(&new_table);
        let existing = if conn.refills_on_replace() {
            conn.columns(target)?
        } else {
            None
        };
        let Some(mut existing) = existing else {
            conn.execute(
                &format!("DROP TABLE IF EXISTS {name}"),
                &self.context("replacing the table"),
            )?;
            return conn.execute(
                &format!("ALTER TABLE {new} RENAME TO {}", conn.quote(&target.table)),
                &self.context("replacing the table"),
            );
        };
        // Refill the existing table: it takes the new table's columns (and
        // keeps its others), then its rows.
        let incoming = conn.columns(&new_table)?.unwrap_or_default();
        let changes = plan(&mut existing, &incoming, true, &target.to_string())
            .map_err(|message| Error::pipeline(&self.spec.pipeline, message))?;
        self.apply(conn, &name, &changes)?;
        let list = incoming
            .iter()
            .map(|(n, _)| conn.quote(n))
            .collect::<Vec<_>>()
            .join(", ");
        conn.execute(
            &format!(
                "TRUNCATE {name}; INSERT INTO {name} ({list}) SELECT {list} FROM {new}; DROP TABLE {new}"
            ),
            &self.context("replacing the table's rows"),
        )
    }
}

/// `name type, ...` for a CREATE TABLE.
fn definitions(dialect: &impl Dialect, columns: &Columns) -> String {
    columns
        .iter()
        .map(|(n, t)| format!("{} {}", dialect.quote(n), dialect.type_sql(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a batch with the `source` columns appends straight into a table
/// with `columns`, with no staging.
fn fits_directly(dialect: &impl Dialect, columns: &Columns, source: &Columns) -> bool {
    if dialect.appends_by_name() {
        source.iter().all(|c| columns.contains(c))
    } else {
        columns == source
    }
}

/// Puts `batch` (with the `source` columns) in a fresh staging table.
fn stage<C: SqlConnection>(conn: &C, source: &Columns, batch: RecordBatch) -> Result<()> {
    conn.execute(
        &conn.create_stage(&definitions(conn, source)),
        "creating the staging table",
    )?;
    conn.append(Target::Stage, batch)
}

/// `MERGE` of the rows of `latest` (one per key) into `target`: a row whose
/// key is there is updated in place, its other columns (those the batch does
/// not have) kept; a new key is inserted.
fn merge_sql(
    dialect: &impl Dialect,
    target: &str,
    latest: &str,
    keys: &KeySql,
    source: &Columns,
    key_columns: &[String],
) -> String {
    let list: Vec<String> = source.iter().map(|(n, _)| dialect.quote(n)).collect();
    let values: Vec<String> = list.iter().map(|c| format!("s.{c}")).collect();
    let updates: Vec<String> = source
        .iter()
        .filter(|(n, _)| !key_columns.contains(n))
        .map(|(n, _)| format!("{c} = s.{c}", c = dialect.quote(n)))
        .collect();
    let matched = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("UPDATE SET {}", updates.join(", "))
    };
    format!(
        "MERGE INTO {target} AS t USING ({latest}) AS s ON {join} \
         WHEN MATCHED THEN {matched} \
         WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})",
        join = keys.join,
        columns = list.join(", "),
        values = values.join(", ")
    )
}

/// How many times a load tries to create its table's schema (see
/// [`Load::create_schema`]).
const SCHEMA_ATTEMPTS: u64 = 5;

/// One load into a SQL warehouse: the pipeline's table and its child
/// tables, on one connection, committed in steps, each step one
/// transaction with the pipeline's state.
pub(crate) struct Load<C: SqlConnection> {
    conn: C,
    /// The pipeline's own table first, then its child tables.
    tables: Vec<Table>,
    in_transaction: bool,
    /// Whether the table's schema exists, once created.
    schema_created: bool,
    /// Whether the server runs MERGE, once asked.
    merge: Option<bool>,
}

impl<C: SqlConnection> Load<C> {
    /// A load of `load`'s table over `conn`; nothing happens before the
    /// first write or commit.
    pub(crate) fn new(conn: C, load: LoadSpec) -> Self {
        Load {
            conn,
            tables: vec![Table::new(None, load)],
            in_transaction: false,
            schema_created: false,
            merge: None,
        }
    }

    /// The pipeline's own table.
    fn own(&self) -> &LoadSpec {
        &self.tables[0].spec
    }

    fn begin(&mut self) -> Result<()> {
        if self.in_transaction {
            return Ok(());
        }
        self.create_schema()?;
        self.conn
            .execute("BEGIN", &self.tables[0].context("starting a transaction"))?;
        self.in_transaction = true;
        Ok(())
    }

    /// Creates the table's schema once per load, on its own, before the
    /// load's first transaction: loads of several pipelines into one schema
    /// would otherwise conflict on it (DuckDB) or wait for each other
    /// (Postgres). Loads that start together may still create it at the
    /// same moment, and all but one fail (DuckDB's write-write conflict,
    /// Postgres' duplicate key); those try again once the first has
    /// committed, when the schema exists.
    fn create_schema(&mut self) -> Result<()> {
        if self.schema_created {
            return Ok(());
        }
        let table = &self.tables[0];
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            self.conn.schema(&table.spec.table)
        );
        let context = table.context("creating the schema");
        let mut attempt = 1;
        while let Err(e) = self.conn.execute(&sql, &context) {
            if attempt == SCHEMA_ATTEMPTS {
                return Err(e);
            }
            std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
            attempt += 1;
        }
        self.schema_created = true;
        Ok(())
    }

    /// Forgets what the ended transaction did.
    fn reset(&mut self) {
        self.in_transaction = false;
        for table in &mut self.tables {
            table.columns = None;
            table.building = false;
        }
    }

    /// Writes `batch` into the table at `index` of `tables`.
    fn write_to(&mut self, index: usize, batch: RecordBatch) -> Result<Written> {
        if batch.num_rows() == 0 {
            return Ok(Written::default());
        }
        let batch = self.conn.normalize(batch)?;
        self.begin()?;
        let (batch, mut letters) = reject_null_keys(&self.tables[index].spec, batch)?;
        if batch.num_rows() == 0 {
            return Ok(Written {
                dead_letters: letters,
                ..Written::default()
            });
        }
        let Load {
            conn,
            tables,
            merge,
            ..
        } = self;
        let mut written = tables[index].write(conn, batch, || match merge {
            Some(supported) => Ok(*supported),
            None => {
                let supported = conn.supports_merge()?;
                *merge = Some(supported);
                Ok(supported)
            }
        })?;
        letters.append(&mut written.dead_letters);
        written.dead_letters = letters;
        Ok(written)
    }

    /// Inserts the file `scan` (read by the query `select`) into the
    /// pipeline's table, in the open transaction, when the table takes the
    /// file's columns as they are: it does not exist yet (it is created),
    /// or it has every column of the file with the same type. `None` when
    /// it does not.
    fn insert_file(&mut self, scan: &FileScan, select: &str) -> Result<Option<u64>> {
        let schema = Schema::new(
            scan.columns
                .iter()
                .map(|(name, data_type)| Field::new(name, data_type.clone(), true))
                .collect::<Vec<_>>(),
        );
        let Load { conn, tables, .. } = self;
        let table = &mut tables[0];
        let target = table.spec.write_table();
        let name = conn.qualified(&target);
        let source = conn.batch_columns(&schema);
        let columns = match conn.columns(&target)? {
            None => table.prepare(conn, &target, &name, &source)?,
            Some(columns) => columns,
        };
        let mut list = Vec::with_capacity(source.len());
        for (column, source_type) in &source {
            match columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(column)) {
                Some((c, table_type)) if table_type == source_type => list.push(conn.quote(c)),
                _ => return Ok(None),
            }
        }
        let sql = format!("INSERT INTO {name} ({}) {select}", list.join(", "));
        conn.reading_file(true)?;
        conn.execute_counting(&sql, &table.context(&format!("reading {}", scan.name)))
            .map(Some)
    }
}

impl<C: SqlConnection> Destination for Load<C> {
    fn add_child(&mut self, name: &str, primary_key: Vec<String>) -> Result<()> {
        if self.tables.iter().any(|t| t.child.as_deref() == Some(name)) {
            return Err(Error::pipeline(
                &self.own().pipeline,
                format!("two child tables are named {name:?}"),
            ));
        }
        let spec = self.own().child(name, primary_key);
        self.tables.push(Table::new(Some(name.to_string()), spec));
        Ok(())
    }

    fn write(&mut self, batch: RecordBatch) -> Result<Written> {
        self.write_to(0, batch)
    }

    fn write_child(&mut self, name: &str, batch: RecordBatch) -> Result<Written> {
        let index = self
            .tables
            .iter()
            .position(|t| t.child.as_deref() == Some(name))
            .ok_or_else(|| {
                Error::pipeline(
                    &self.own().pipeline,
                    format!("the source sent rows for an undeclared child table {name:?}"),
                )
            })?;
        self.write_to(index, batch)
    }

    fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let own = self.own();
        self.conn
            .insert_dead_letters(&own.pipeline, &own.run_id, letters)
    }

    fn reads_files(&self) -> bool {
        let own = self.own();
        let plain_append = own.write == WriteMode::Append && !own.upserts() && !own.dedupes();
        plain_append && self.conn.reads_files()
    }

    fn load_file(&mut self, scan: &FileScan) -> Result<Option<Written>> {
        // Rows, dead letters or a table being built wait in the
        // transaction: declining the file must not roll them back.
        if self.in_transaction || !self.reads_files() {
            return Ok(None);
        }
        let Some(select) = self.conn.select_file(scan) else {
            return Ok(None);
        };
        self.begin()?;
        let inserted = self.insert_file(scan, &select);
        if !matches!(inserted, Ok(Some(_))) {
            self.rollback()?;
        }
        self.conn.reading_file(false)?;
        match inserted {
            Ok(Some(rows)) => Ok(Some(Written {
                rows,
                ..Written::default()
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::debug!(
                    pipeline = %self.own().pipeline,
                    "{}: read by flowline, as the warehouse could not: {e}",
                    scan.name
                );
                Ok(None)
            }
        }
    }

    fn commit(&mut self, state: Option<&serde_json::Value>) -> Result<()> {
        self.begin()?;
        for table in &self.tables {
            table.finish_replace(&self.conn)?;
        }
        let own = &self.tables[0];
        if let Some(state) = state {
            self.conn
                .save_state(&own.spec.pipeline, &own.spec.run_id, &state.to_string())?;
        }
        self.conn.execute("COMMIT", &own.context("committing"))?;
        self.reset();
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if self.in_transaction {
            self.reset();
            self.conn
                .execute("ROLLBACK", &self.tables[0].context("rolling back"))?;
        }
        Ok(())
    }

    fn keep_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        self.rollback()?;
        if letters.is_empty() {
            return Ok(());
        }
        let own = &self.tables[0];
        self.conn
            .execute("BEGIN", &own.context("starting a transaction"))?;
        self.in_transaction = true;
        self.conn
            .insert_dead_letters(&own.spec.pipeline, &own.spec.run_id, letters)?;
        self.conn
            .execute("COMMIT", &own.context("committing dead letters"))?;
        self.in_transaction = false;
        Ok(())
    }
}

impl<C: SqlConnection> Drop for Load<C> {
    fn drop(&mut self) {
        let _ = self.rollback();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;
    use crate::destinations::Warehouse;
    use crate::destinations::duckdb::DuckDbConfig;
    use crate::destinations::duckdb::DuckDbWarehouse;

    fn warehouse(dir: &tempfile::TempDir) -> DuckDbWarehouse {
        DuckDbWarehouse::open(&dir.path().join("w.duckdb"), &DuckDbConfig::default())
            .expect("opens")
    }

    fn spec(write: WriteMode, primary_key: &[&str]) -> LoadSpec {
        LoadSpec {
            pipeline: "p".into(),
            run_id: "r".into(),
            table: TableName::parse("raw.orders").expect("name"),
            write,
            primary_key: primary_key.iter().map(|k| k.to_string()).collect(),
            dedupe_key: Vec::new(),
            upsert: write == WriteMode::Merge,
            schema: SchemaPolicy::Strict,
        }
    }

    /// A batch of `(name, values)` columns: numbers are BIGINT, the rest text.
    fn batch(columns: &[(&str, &[&str])]) -> RecordBatch {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (name, values) in columns {
            if values.iter().all(|v| v.parse::<i64>().is_ok()) {
                fields.push(Field::new(*name, DataType::Int64, true));
                let numbers: Vec<i64> = values.iter().filter_map(|v| v.parse().ok()).collect();
                arrays.push(Arc::new(Int64Array::from(numbers)));
            } else {
                fields.push(Field::new(*name, DataType::Utf8, true));
                arrays.push(Arc::new(StringArray::from(values.to_vec())));
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch")
    }

    fn count(warehouse: &DuckDbWarehouse, sql: &str) -> i64 {
        let result = warehouse.query(sql).expect("query");
        result.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a count")
            .value(0)
    }

    fn exists(warehouse: &DuckDbWarehouse, table: &str) -> bool {
        warehouse
            .table_exists(&TableName::parse(table).expect("name"))
            .expect("looks up")
    }

    #[test]
    fn loads_that_start_together_into_a_new_schema_all_create_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let loads: Vec<_> = (0..4)
            .map(|i| {
                let mut spec = spec(WriteMode::Append, &[]);
                spec.pipeline = format!("p{i}");
                spec.table = TableName::parse(&format!("fresh.t{i}")).expect("name");
                w.destination(spec).expect("a load")
            })
            .collect();
        let start = std::sync::Barrier::new(loads.len());
        std::thread::scope(|scope| {
            for mut load in loads {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    load.write(batch(&[("id", &["1", "2"])])).expect("rows");
                    load.commit(None).expect("commits");
                });
            }
        });
        for i in 0..4 {
            assert_eq!(count(&w, &format!("select count(*) from fresh.t{i}")), 2);
        }
    }

    #[test]
    fn child_tables_commit_in_the_transaction_of_the_parent_and_its_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let mut load = w.destination(spec(WriteMode::Append, &[])).expect("a load");
        load.add_child("lines", Vec::new()).expect("a child");
        load.write(batch(&[("id", &["1", "2"])]))
            .expect("parent rows");
        load.write_child("lines", batch(&[("_parent_id", &["1", "1", "2"])]))
            .expect("child rows");
        assert!(
            !exists(&w, "raw.orders__lines"),
            "nothing is visible before the commit"
        );
        load.commit(Some(&serde_json::json!({"cursor": 2})))
            .expect("commits");
        assert_eq!(count(&w, "select count(*) from raw.orders"), 2);
        assert_eq!(count(&w, "select count(*) from raw.orders__lines"), 3);
        assert_eq!(
            w.saved_state("p").expect("state").expect("saved").state,
            serde_json::json!({"cursor": 2})
        );

        load.write(batch(&[("id", &["3"])])).expect("parent rows");
        load.write_child("lines", batch(&[("_parent_id", &["3"])]))
            .expect("child rows");
        load.rollback().expect("rolls back");
        load.write_child("lines", batch(&[("_parent_id", &["4"])]))
            .expect("child rows");
        drop(load);
        assert_eq!(count(&w, "select count(*) from raw.orders"), 2);
        assert_eq!(
            count(&w, "select count(*) from raw.orders__lines"),
            3,
            "rolled back and dropped loads leave the child tables as committed"
        );
    }

    #[test]
    fn rows_for_an_undeclared_child_table_fail_the_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let mut load = w.destination(spec(WriteMode::Append, &[])).expect("a load");
        let err = load
            .write_child("lines", batch(&[("id", &["1"])]))
            .expect_err("undeclared");
        assert!(
            err.to_string().contains("undeclared child table \"lines\""),
            "{err}"
        );
        load.add_child("lines", Vec::new()).expect("a child");
        assert!(
            load.add_child("lines", Vec::new()).is_err(),
            "declared twice"
        );
    }

    #[test]
    fn merge_updates_rows_in_place_and_the_last_row_of_a_key_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let mut load = w
            .destination(spec(WriteMode::Merge, &["id"]))
            .expect("a load");
        load.add_child("lines", vec!["_parent_id".into(), "_index".into()])
            .expect("a child");
        load.write(batch(&[
            ("id", &["1", "2"]),
            ("name", &["a", "b"]),
            ("note", &["x", "y"]),
        ]))
        .expect("rows");
        load.write_child(
            "lines",
            batch(&[("_parent_id", &["1", "1"]), ("_index", &["0", "1"])]),
        )
        .expect("child rows");
        load.commit(None).expect("commits");
        // No `note` column: merged rows keep theirs.
        load.write(batch(&[
            ("id", &["2", "3", "2"]),
            ("name", &["B", "c", "B2"]),
        ]))
        .expect("rows");
        load.write_child(
            "lines",
            batch(&[("_parent_id", &["1", "3"]), ("_index", &["1", "0"])]),
        )
        .expect("child rows");
        load.commit(None).expect("commits");
        assert_eq!(count(&w, "select count(*) from raw.orders"), 3);
        assert_eq!(
            count(
                &w,
                "select count(*) from raw.orders where id = 2 and name = 'B2' and note = 'y'"
            ),
            1
        );
        assert_eq!(count(&w, "select count(*) from raw.orders__lines"), 3);
    }

    #[test]
    fn dedupe_key_drops_rows_already_loaded_and_repeats_in_a_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let mut spec = spec(WriteMode::Append, &[]);
        spec.dedupe_key = vec!["id".into()];
        let mut load = w.destination(spec).expect("a load");
        let first = load
            .write(batch(&[("id", &["1", "2", "2"]), ("v", &["a", "b", "c"])]))
            .expect("rows");
        load.commit(None).expect("commits");
        let second = load
            .write(batch(&[("id", &["2", "3"]), ("v", &["d", "e"])]))
            .expect("rows");
        load.commit(None).expect("commits");
        assert_eq!(count(&w, "select count(*) from raw.orders"), 3);
        assert_eq!((first.rows, first.duplicates), (2, 1), "counts what landed");
        assert_eq!((second.rows, second.duplicates), (1, 1));
        assert_eq!(
            count(&w, "select count(*) from raw.orders where v = 'b'"),
            1
        );
    }

    #[test]
    fn replace_swaps_in_the_new_tables_and_empties_children_without_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let mut load = w.destination(spec(WriteMode::Append, &[])).expect("a load");
        load.add_child("lines", Vec::new()).expect("a child");
        load.write(batch(&[("id", &["1", "2"])])).expect("rows");
        load.write_child("lines", batch(&[("_parent_id", &["1"])]))
            .expect("child rows");
        load.commit(None).expect("commits");
        drop(load);

        let mut load = w
            .destination(spec(WriteMode::Replace, &[]))
            .expect("a load");
        load.add_child("lines", Vec::new()).expect("a child");
        load.write(batch(&[("id", &["7"]), ("name", &["new column"])]))
            .expect("rows");
        assert_eq!(
            count(&w, "select count(*) from raw.orders"),
            2,
            "the old table serves queries while the new one is built"
        );
        load.commit(Some(&serde_json::json!({"done": true})))
            .expect("commits");
        assert_eq!(
            count(
                &w,
                "select count(*) from raw.orders where name = 'new column'"
            ),
            1
        );
        assert_eq!(count(&w, "select count(*) from raw.orders"), 1);
        assert_eq!(count(&w, "select count(*) from raw.orders__lines"), 0);
        assert!(!exists(&w, "raw._flowline_new_orders"));
    }

    #[test]
    fn a_failed_run_keeps_its_dead_letters_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let mut load = w.destination(spec(WriteMode::Append, &[])).expect("a load");
        let letters = vec![DeadLetter {
            origin: "a.csv:2".into(),
            reason: "not a number".into(),
            raw: "x".into(),
        }];
        load.write(batch(&[("id", &["1"])])).expect("rows");
        load.write_dead_letters(&letters).expect("letters");
        load.keep_dead_letters(&letters).expect("kept");
        drop(load);
        assert!(!exists(&w, "raw.orders"));
        assert_eq!(
            count(&w, "select count(*) from main._flowline_dead_letter"),
            1
        );
    }

    #[test]
    fn rows_with_a_null_key_are_dead_letters_and_never_duplicate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = warehouse(&dir);
        let with_null_key = || {
            let ids: Int64Array = vec![Some(1), None].into();
            let names = StringArray::from(vec!["a", "b"]);
            let schema = Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ]);
            RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), Arc::new(names)])
                .expect("batch")
        };
        for _ in 0..2 {
            let mut load = w
                .destination(spec(WriteMode::Merge, &["id"]))
                .expect("a load");
            let written = load.write(with_null_key()).expect("writes");
            assert_eq!((written.rows, written.dead_letters.len()), (1, 1));
            load.write_dead_letters(&written.dead_letters)
                .expect("records them");
            load.commit(None).expect("commits");
        }
        assert_eq!(count(&w, "select count(*) from raw.orders"), 1);
        assert_eq!(
            count(
                &w,
                "select count(*) from _flowline_dead_letter where reason like '%\"id\" is NULL%' \
                 and raw like '%\"b\"%'"
            ),
            2,
            "the row is rejected, with its reason, on each run"
        );
    }

    /// A batch with an `id` BIGINT column and a column `v` of `values`.
    fn with_values(ids: &[i64], values: ArrayRef) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("v", values.data_type().clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(ids.to_vec())), values],
        )
        .expect("batch")
    }

    /// Column `v` of raw.orders as text, by id, and its type.
    fn values_of_v(w: &DuckDbWarehouse) -> (String, Vec<String>) {
        let result = w
            .query("select v::varchar from raw.orders order by id")
            .expect("query");
        let mut values = Vec::new();
        for batch in &result.batches {
            let text = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("text");
            values.extend((0..text.len()).map(|i| text.value(i).to_string()));
        }
        let ty = w
            .query(
                "select data_type from information_schema.columns \
                 where table_name = 'orders' and column_name = 'v'",
            )
            .expect("query");
        let ty = ty.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text")
            .value(0)
            .to_string();
        (ty, values)
    }

    fn load_all(
        w: &DuckDbWarehouse,
        policy: SchemaPolicy,
        batches: Vec<RecordBatch>,
    ) -> Vec<Written> {
        let mut written = Vec::new();
        for batch in batches {
            let mut load = w
                .destination(LoadSpec {
                    schema: policy,
                    ..spec(WriteMode::Append, &[])
                })
                .expect("a load");
            let w = load.write(batch).expect("writes");
            load.write_dead_letters(&w.dead_letters).expect("letters");
            load.commit(None).expect("commits");
            written.push(w);
        }
        written
    }

    fn floats(values: &[f64]) -> ArrayRef {
        Arc::new(arrow::array::Float64Array::from(values.to_vec()))
    }

    fn ints(values: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    #[test]
    fn a_fraction_widens_an_integer_column_and_whole_numbers_fit_it_as_they_are() {
        let dir = tempfile::tempdir().expect("tmp");
        let w = warehouse(&dir);
        load_all(
            &w,
            SchemaPolicy::Evolve,
            vec![
                with_values(&[1], ints(&[10])),
                with_values(&[2], floats(&[3.0])),
            ],
        );
        assert_eq!(
            values_of_v(&w),
            ("BIGINT".into(), vec!["10".into(), "3".into()])
        );
        load_all(
            &w,
            SchemaPolicy::Evolve,
            vec![with_values(&[3, 4], floats(&[2.5, -7.9]))],
        );
        assert_eq!(
            values_of_v(&w),
            (
                "DOUBLE".into(),
                ["10.0", "3.0", "2.5", "-7.9"].map(String::from).to_vec()
            )
        );
    }

    #[test]
    fn integers_a_double_cannot_hold_widen_to_text() {
        let dir = tempfile::tempdir().expect("tmp");
        let w = warehouse(&dir);
        load_all(
            &w,
            SchemaPolicy::Evolve,
            vec![
                with_values(&[1], ints(&[9_007_199_254_740_993])),
                with_values(&[2], floats(&[1.5])),
            ],
        );
        assert_eq!(
            values_of_v(&w),
            (
                "VARCHAR".into(),
                vec!["9007199254740993".into(), "1.5".into()]
            )
        );

        let dir = tempfile::tempdir().expect("tmp");
        let w = warehouse(&dir);
        load_all(
            &w,
            SchemaPolicy::Evolve,
            vec![
                with_values(&[1], floats(&[0.5])),
                with_values(&[2, 3], ints(&[7, 9_007_199_254_740_993])),
            ],
        );
        assert_eq!(
            values_of_v(&w),
            (
                "VARCHAR".into(),
                ["0.5", "7", "9007199254740993"].map(String::from).to_vec()
            )
        );
    }

    #[test]
    fn strict_rejects_only_the_rows_whose_values_do_not_fit() {
        let dir = tempfile::tempdir().expect("tmp");
        let w = warehouse(&dir);
        let written = load_all(
            &w,
            SchemaPolicy::Strict,
            vec![
                with_values(&[1], ints(&[10])),
                with_values(&[2, 3, 4], floats(&[2.0, 2.5, -7.9])),
            ],
        );
        assert_eq!(written[1].rows, 1);
        assert_eq!(written[1].dead_letters.len(), 2);
        assert!(written[1].dead_letters[0].raw.contains("2.5"));
        assert_eq!(
            values_of_v(&w),
            ("BIGINT".into(), vec!["10".into(), "2".into()])
        );
        assert_eq!(count(&w, "select count(*) from _flowline_dead_letter"), 2);
    }
}
