//! The asking side of the local control socket.
//!
//! `flowline sql`, `status` and `run` reach the warehouse through
//! [`open_warehouse`] and [`run`]: when a flowline process owns the
//! project's warehouse they ask it over its socket; otherwise they open the
//! warehouse in this process, as they always did. They print the same
//! either way: query results come back as the owner's Arrow batches, runs as
//! its run records.
//!
//! The client blocks (std's `UnixStream`) rather than using tokio: the
//! [`Warehouse`] trait it implements is synchronous, and `sql` and `status`
//! run outside the async runtime.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::local::ANSWER_TIMEOUT;
use super::protocol::{Request, Response, encode, from_ipc, read_frame};
use super::{Owner, socket_path};
use crate::config::{Pipeline, Project};
use crate::core::error::{Error, Result};
use crate::destinations::{Destination, LoadSpec, QueryResult, SavedState, TableName, Warehouse};
use crate::engine::RunOptions;
use crate::engine::progress::Progress;
use crate::state::{RunRecord, open_state_store};

/// How long a command waits for the warehouse's lock while an owner is
/// starting or stopping (its socket file is there but does not answer).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How often it looks again meanwhile.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// A connection to the flowline process that owns a project's warehouse.
pub struct LocalClient {
    path: PathBuf,
    stream: UnixStream,
    owner: Owner,
}

impl LocalClient {
    /// Connects to the owner of `project`'s warehouse; `None` when no
    /// flowline process answers on its socket (no socket file, or one left
    /// by a process that died). Fails when something is there but cannot be
    /// used: it does not answer in time, speaks another protocol version, or
    /// belongs to another user.
    pub fn connect(project: &Project) -> Result<Option<LocalClient>> {
        let path = socket_path(project);
        let stream = match UnixStream::connect(&path) {
            Ok(stream) => stream,
            // No file, nobody listening, or a path too long for a socket
            // (so no owner can have bound it either).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::InvalidInput
                ) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::Other(format!(
                    "{}: cannot reach the flowline process that owns this project's warehouse: {e}",
                    path.display()
                )));
            }
        };
        let timeout = Some(ANSWER_TIMEOUT);
        stream
            .set_read_timeout(timeout)
            .and_then(|_| stream.set_write_timeout(timeout))
            .map_err(|e| Error::io(&path, e))?;
        let mut client = LocalClient {
            path,
            stream,
            owner: Owner::default(),
        };
        let owner = match client.exchange(&Request::Ping)? {
            (Response::Pong(owner), _) => owner,
            (other, _) => return Err(client.unexpected(&other)),
        };
        // Queries and runs take as long as they take.
        client
            .stream
            .set_read_timeout(None)
            .and_then(|_| client.stream.set_write_timeout(None))
            .map_err(|e| Error::io(&client.path, e))?;
        tracing::debug!(
            "flowline process {} owns the warehouse ({}): asking it",
            owner.pid,
            owner.activity
        );
        client.owner = owner;
        Ok(Some(client))
    }

    /// The owning process, as it described itself.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Runs SQL in the owner's warehouse.
    pub fn query(&mut self, sql: &str) -> Result<QueryResult> {
        let request = Request::Query {
            sql: sql.to_string(),
        };
        match self.exchange(&request)? {
            (Response::QueryResult, payload) => from_ipc(&payload),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Runs `statements` in one transaction in the owner's warehouse.
    pub fn execute(&mut self, statements: &[String]) -> Result<()> {
        let request = Request::Execute {
            statements: statements.to_vec(),
        };
        match self.exchange(&request)? {
            (Response::Executed, _) => Ok(()),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// The state `pipeline` last committed in the owner's warehouse.
    pub fn saved_state(&mut self, pipeline: &str) -> Result<Option<SavedState>> {
        let request = Request::SavedState {
            pipeline: pipeline.to_string(),
        };
        match self.exchange(&request)? {
            (Response::SavedState { saved }, _) => Ok(saved.map(Into::into)),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Forgets the state `pipeline` committed in the owner's warehouse;
    /// `false` when there was none. The owner refuses while it runs the
    /// pipeline.
    pub fn reset_state(&mut self, pipeline: &str) -> Result<bool> {
        let request = Request::ResetState {
            pipeline: pipeline.to_string(),
        };
        match self.exchange(&request)? {
            (Response::StateReset { existed }, _) => Ok(existed),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Whether `table` exists in the owner's warehouse.
    pub fn table_exists(&mut self, table: &TableName) -> Result<bool> {
        let request = Request::TableExists {
            schema: table.schema.clone(),
            table: table.table.clone(),
        };
        match self.exchange(&request)? {
            (Response::TableExists { exists }, _) => Ok(exists),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    /// Runs `pipelines` inside the owner, one after another, calling
    /// `on_record` as each one ends; the records come in the order asked.
    /// The owner reads the project's files afresh and runs with its own
    /// environment.
    pub fn run(
        &mut self,
        pipelines: &[String],
        options: RunOptions,
        mut on_record: impl FnMut(&RunRecord),
    ) -> Result<Vec<RunRecord>> {
        self.send(&Request::Run {
            pipelines: pipelines.to_vec(),
            full_refresh: options.full_refresh,
        })?;
        let mut records = Vec::new();
        loop {
            match self.receive()? {
                (Response::RunRecord { record }, _)
                    if pipelines.get(records.len()) == Some(&record.pipeline) =>
                {
                    let record = RunRecord::from(record);
                    on_record(&record);
                    records.push(record);
                }
                (Response::RunDone, _) => return Ok(records),
                (other, _) => return Err(self.unexpected(&other)),
            }
        }
    }

    fn exchange(&mut self, request: &Request) -> Result<(Response, Vec<u8>)> {
        self.send(request)?;
        self.receive()
    }

    fn send(&mut self, request: &Request) -> Result<()> {
        let bytes = encode(request, &[]).map_err(|e| self.lost(e))?;
        self.stream
            .write_all(&bytes)
            .and_then(|_| self.stream.flush())
            .map_err(|e| self.lost(e))
    }

    /// The next answer; an error answer becomes the error it reports.
    fn receive(&mut self) -> Result<(Response, Vec<u8>)> {
        let frame = read_frame(&mut self.stream)
            .map_err(|e| self.lost(e))?
            .ok_or_else(|| {
                self.lost(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "it closed the connection",
                ))
            })?;
        match frame.decode::<Response>().map_err(|e| self.lost(e))? {
            Response::Error { message } => Err(Error::Other(message)),
            response => Ok((response, frame.payload)),
        }
    }

    /// The error for a connection that failed.
    fn lost(&self, e: std::io::Error) -> Error {
        let timed_out = matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        );
        if self.owner.pid == 0 && timed_out {
            Error::Other(format!(
                "{}: a process listens there but did not answer within {}s; if no flowline \
                 process runs on this project, delete the file",
                self.path.display(),
                ANSWER_TIMEOUT.as_secs()
            ))
        } else if self.owner.pid == 0 {
            Error::Other(format!("{}: {e}", self.path.display()))
        } else {
            Error::Other(format!(
                "the flowline process (pid {}) that owns this project's warehouse stopped \
                 answering: {e}",
                self.owner.pid
            ))
        }
    }

    fn unexpected(&self, response: &Response) -> Error {
        Error::Other(format!(
            "{}: unexpected answer {response:?}; do this flowline and the one serving the \
             project have the same version?",
            self.path.display()
        ))
    }
}

/// The owner's warehouse seen through its socket: queries and saved state
/// are asked of it. Loads are not: they run inside the owner ([`run`]).
struct OwnerWarehouse {
    client: Mutex<LocalClient>,
}

impl OwnerWarehouse {
    fn with<T>(&self, ask: impl FnOnce(&mut LocalClient) -> Result<T>) -> Result<T> {
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        ask(&mut client)
    }
}

impl Warehouse for OwnerWarehouse {
    fn destination(&self, load: LoadSpec) -> Result<Box<dyn Destination>> {
        let pid = self.with(|client| Ok(client.owner.pid))?;
        Err(Error::pipeline(
            &load.pipeline,
            format!(
                "flowline process {pid} owns the warehouse, so loads run inside it \
                 (`flowline run` asks it to)"
            ),
        ))
    }

    fn query(&self, sql: &str) -> Result<QueryResult> {
        self.with(|client| client.query(sql))
    }

    fn execute(&self, statements: &[String]) -> Result<()> {
        self.with(|client| client.execute(statements))
    }

    fn saved_state(&self, pipeline: &str) -> Result<Option<SavedState>> {
        self.with(|client| client.saved_state(pipeline))
    }

    fn table_exists(&self, table: &TableName) -> Result<bool> {
        self.with(|client| client.table_exists(table))
    }

    fn reset_state(&self, pipeline: &str) -> Result<bool> {
        self.with(|client| client.reset_state(pipeline))
    }
}

/// Where this command reaches the warehouse.
enum Access {
    /// Through the process that owns it.
    Owner(LocalClient),
    /// Opened here.
    Here(Box<dyn Warehouse>),
}

/// Whether opening the warehouse failed because another process holds it.
fn locked(error: &Error) -> bool {
    error.is_warehouse_locked()
}

fn locate(project: &Project) -> Result<Access> {
    if let Some(owner) = LocalClient::connect(project)? {
        return Ok(Access::Owner(owner));
    }
    let socket = socket_path(project);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match project.open_warehouse() {
            Ok(warehouse) => return Ok(Access::Here(warehouse)),
            // An owner that is starting (its socket bound, not answering
            // yet) or stopping (no longer answering, the warehouse not yet
            // released) holds the lock while its socket file is there.
            Err(e) if locked(&e) && socket.exists() && Instant::now() < deadline => {
                std::thread::sleep(RETRY_EVERY);
                if let Some(owner) = LocalClient::connect(project)? {
                    return Ok(Access::Owner(owner));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs blocking work from async code without stalling the runtime's
/// workers.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The project's warehouse, for queries and saved state: the owning
/// process's, through its socket, when a flowline process owns it;
/// otherwise opened in this process.
pub fn open_warehouse(project: &Project) -> Result<Box<dyn Warehouse>> {
    Ok(match locate(project)? {
        Access::Owner(client) => Box::new(OwnerWarehouse {
            client: Mutex::new(client),
        }),
        Access::Here(warehouse) => warehouse,
    })
}

/// Runs `pipelines` one after another and returns their records, calling
/// `on_record` as each one ends: inside the process that owns the
/// project's warehouse when there is one, otherwise here with `progress`.
pub async fn run(
    project: &Project,
    pipelines: &[&Pipeline],
    options: RunOptions,
    progress: &Progress,
    mut on_record: impl FnMut(&Pipeline, &RunRecord),
) -> Result<Vec<RunRecord>> {
    let warehouse = match blocking(|| locate(project))? {
        Access::Owner(mut owner) => {
            let names: Vec<String> = pipelines.iter().map(|p| p.name.clone()).collect();
            // The owner answers in the order asked (the client checks).
            let mut asked = pipelines.iter();
            let report = |record: &RunRecord| {
                if let Some(pipeline) = asked.next() {
                    on_record(pipeline, record);
                }
            };
            return blocking(|| owner.run(&names, options, report));
        }
        Access::Here(warehouse) => warehouse,
    };
    let store = open_state_store(project)?;
    let mut records = Vec::new();
    for pipeline in pipelines {
        let record = crate::engine::run_one(
            project,
            pipeline,
            warehouse.as_ref(),
            store.as_ref(),
            options,
            progress,
        )
        .await;
        on_record(pipeline, &record);
        records.push(record);
    }
    Ok(records)
}
