//! The owning side of the local control socket.
//!
//! The process that holds the project's warehouse (`flowline serve`, later
//! `flowline stream`) binds the project's socket ([`super::socket_path`]) and answers
//! other flowline commands on this machine: queries, saved state (read and
//! reset), and runs of pipelines, which it loads with its own warehouse and
//! state store.
//!
//! ```ignore
//! let socket = server::local::bind(project.clone()).await?; // fails naming another owner's pid
//! let warehouse: Arc<dyn Warehouse> = Arc::from(project.open_warehouse()?);
//! let store: Arc<dyn StateStore> = Arc::from(open_state_store(&project)?);
//! let server = socket.serve(warehouse, store);
//! server.set_activity("flowline stream orders");
//! let _claim = server.claim("orders")?;                // `flowline run orders` is refused meanwhile
//! // ... until it is time to stop:
//! server.shutdown().await;
//! ```
//!
//! Binding before opening the warehouse leaves no moment in which the
//! warehouse is locked but nobody answers on the socket; [`serve`] does both
//! steps for a caller that already holds the warehouse. The socket is
//! readable and writable by its owner only, and connections from other users
//! are refused: a run executes with the owning process's environment and
//! secrets.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::protocol::{Request, Response, WireRun, read_frame_async, to_ipc, write_frame_async};
use super::{Owner, socket_path};
use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::destinations::{TableName, Warehouse};
use crate::engine::progress::Progress;
use crate::engine::{RunOptions, refused, run_one};
use crate::state::StateStore;

/// How long a process found on the socket has to answer a ping.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// What is at the socket path.
enum Probe {
    /// Nothing: no file.
    Nobody,
    /// A socket file nobody listens on (its process died).
    Stale,
    /// A flowline process that answered.
    Owner(Owner),
    /// Something that cannot be used or removed; why.
    Unusable(String),
}

async fn ping(path: &Path) -> std::io::Result<Owner> {
    let mut stream = UnixStream::connect(path).await?;
    write_frame_async(&mut stream, &Request::Ping, &[]).await?;
    let frame = read_frame_async(&mut stream).await?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "it closed the connection without answering",
        )
    })?;
    match frame.decode::<Response>()? {
        Response::Pong(owner) => Ok(owner),
        other => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it answered a ping with {other:?}"),
        )),
    }
}

async fn probe(path: &Path) -> Probe {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Probe::Nobody,
        Err(e) => return Probe::Unusable(e.to_string()),
    };
    if !metadata.file_type().is_socket() {
        return Probe::Unusable("it is not a socket; move it away".into());
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, ping(path)).await {
        Ok(Ok(owner)) => Probe::Owner(owner),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Stale,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Probe::Nobody,
        Ok(Err(e)) => Probe::Unusable(e.to_string()),
        Err(_) => Probe::Unusable(format!(
            "a process listens there but did not answer within {}s; if no flowline process \
             runs on this project, delete the file",
            ANSWER_TIMEOUT.as_secs()
        )),
    }
}

/// The error for a project whose warehouse another process owns.
fn owned_by(owner: &Owner) -> Error {
    Error::Other(format!(
        "another flowline process (pid {}) owns this project's warehouse ({}): stop it first; \
         flowline sql, status and run work alongside it",
        owner.pid,
        if owner.activity.is_empty() {
            "flowline"
        } else {
            &owner.activity
        }
    ))
}

/// The control socket, bound but not answering yet: proof that this process
/// may own the project's warehouse. Dropping it removes the socket file.
pub struct BoundSocket {
    listener: UnixListener,
    socket: SocketFile,
    project: Arc<Project>,
}

/// Claims the project's control socket: fails, naming its pid, when another
/// flowline process owns the project; removes a socket file left by a
/// process that died. Call it before opening the warehouse, then
/// [`BoundSocket::serve`].
pub async fn bind(project: Arc<Project>) -> Result<BoundSocket> {
    let path = socket_path(&project);
    if let Some(parent) = path.parent() {
        socket_dir(parent)?;
    }
    match probe(&path).await {
        Probe::Nobody => {}
        Probe::Owner(owner) => return Err(owned_by(&owner)),
        Probe::Unusable(why) => {
            return Err(Error::Other(format!(
                "{}: cannot serve this project: {why}",
                path.display()
            )));
        }
        Probe::Stale => {
            tracing::info!(
                "removing {}: the process that served it is gone",
                path.display()
            );
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    let listener = UnixListener::bind(&path).map_err(|e| {
        Error::Other(format!(
            "{}: cannot listen on this project's control socket: {e}",
            path.display()
        ))
    })?;
    // From here on, dropping `socket` removes the file again.
    let socket = SocketFile::new(path)?;
    Ok(BoundSocket {
        listener,
        socket,
        project,
    })
}

/// Creates the folder of the control socket. The shared runtime folder
/// ([`super::runtime_dir`]) is made private to this user, and refused when
/// another user owns it: a socket there could be someone else's.
fn socket_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if dir != super::runtime_dir() {
        return Ok(());
    }
    let metadata = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if metadata.uid() != super::current_uid() {
        return Err(Error::Other(format!(
            "{}: this folder for control sockets belongs to another user (uid {}); remove it \
             or set XDG_RUNTIME_DIR to a folder of yours",
            dir.display(),
            metadata.uid()
        )));
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Binds the project's control socket and serves `warehouse` and `store` on
/// it: [`bind`] and [`BoundSocket::serve`] in one call, for a caller that
/// already holds the warehouse.
pub async fn serve(
    project: Arc<Project>,
    warehouse: Arc<dyn Warehouse>,
    store: Arc<dyn StateStore>,
) -> Result<LocalServer> {
    Ok(bind(project).await?.serve(warehouse, store))
}

impl BoundSocket {
    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.socket.path
    }

    /// Starts answering requests on the current tokio runtime, until the
    /// returned server is shut down or dropped.
    pub fn serve(self, warehouse: Arc<dyn Warehouse>, store: Arc<dyn StateStore>) -> LocalServer {
        let status = Arc::new(Status {
            activity: Mutex::new(String::new()),
            running: Mutex::new(BTreeSet::new()),
        });
        let shared = Arc::new(Shared {
            project: self.project,
            warehouse,
            store,
            status: status.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(self.listener, self.socket.uid, shared, stopped));
        LocalServer {
            socket: self.socket,
            status,
            stop,
            accept: Some(accept),
        }
    }
}

/// The socket file this process bound, removed when dropped, unless
/// another process has put its own socket there since.
struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file bound, to recognise it.
    identity: (u64, u64),
    /// Its owner: the user connections are accepted from.
    uid: u32,
}

impl SocketFile {
    fn new(path: PathBuf) -> Result<SocketFile> {
        let metadata = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let socket = SocketFile {
            identity: (metadata.dev(), metadata.ino()),
            uid: metadata.uid(),
            path,
        };
        std::fs::set_permissions(&socket.path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&socket.path, e))?;
        Ok(socket)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.identity)
            .unwrap_or(false);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("removing {}: {e}", self.path.display());
        }
    }
}

/// What the owner reports about itself; shared with [`LocalServer`].
struct Status {
    activity: Mutex<String>,
    running: Mutex<BTreeSet<String>>,
}

impl Status {
    fn running(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.iter().cloned().collect()
    }

    /// An error when `pipeline` runs in this process: its state must not
    /// change under it.
    fn refuse_running(&self, pipeline: &str) -> Result<()> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains(pipeline) {
            return Err(Error::pipeline(
                pipeline,
                format!(
                    "running in flowline process {}; stop it before resetting its state",
                    std::process::id()
                ),
            ));
        }
        Ok(())
    }
}

/// Everything a request may use.
struct Shared {
    project: Arc<Project>,
    warehouse: Arc<dyn Warehouse>,
    store: Arc<dyn StateStore>,
    status: Arc<Status>,
}

impl Shared {
    fn owner(&self) -> Owner {
        Owner {
            pid: std::process::id(),
            project: self.project.settings.project.name.clone(),
            activity: self
                .status
                .activity
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            running: self.status.running(),
        }
    }
}

/// A serving control socket. Shut it down with [`LocalServer::shutdown`];
/// dropping it stops accepting and removes the socket file at once.
pub struct LocalServer {
    socket: SocketFile,
    status: Arc<Status>,
    stop: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
}

impl LocalServer {
    /// Where it listens.
    pub fn socket_path(&self) -> &Path {
        &self.socket.path
    }

    /// Says what this process is doing (`flowline serve`, `flowline stream
    /// orders`), for other commands to report.
    pub fn set_activity(&self, activity: impl Into<String>) {
        *self
            .status
            .activity
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = activity.into();
    }

    /// The pipelines running in this process right now.
    pub fn running(&self) -> Vec<String> {
        self.status.running()
    }

    /// Marks `pipeline` as running in this process until the claim is
    /// dropped: a `flowline run` of it from another terminal is refused
    /// meanwhile. Fails when it already runs here.
    pub fn claim(&self, pipeline: &str) -> Result<PipelineClaim> {
        PipelineClaim::take(&self.status, pipeline)
    }

    /// A handle that marks pipelines as running in this process, for work
    /// that outlives a borrow of the server (the orchestrator's steps).
    pub fn claimer(&self) -> Claimer {
        Claimer {
            status: self.status.clone(),
        }
    }

    /// Stops accepting connections, lets the requests in progress finish
    /// (a run finishes its pipelines), releases the warehouse and state
    /// store, then removes the socket file.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(accept) = self.accept.take()
            && let Err(e) = accept.await
        {
            tracing::warn!("the control socket's listener failed: {e}");
        }
        // `self` drops here: the socket file goes last, once every request
        // and its hold on the warehouse are gone.
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Marks pipelines as running in the owning process; see
/// [`LocalServer::claimer`].
#[derive(Clone)]
pub struct Claimer {
    status: Arc<Status>,
}

impl Claimer {
    /// Like [`LocalServer::claim`].
    pub fn claim(&self, pipeline: &str) -> Result<PipelineClaim> {
        PipelineClaim::take(&self.status, pipeline)
    }
}

/// A pipeline marked as running in the owning process; see
/// [`LocalServer::claim`].
pub struct PipelineClaim {
    status: Arc<Status>,
    pipeline: String,
}

impl PipelineClaim {
    fn take(status: &Arc<Status>, pipeline: &str) -> Result<PipelineClaim> {
        let mut running = status.running.lock().unwrap_or_else(|p| p.into_inner());
        if !running.insert(pipeline.to_string()) {
            return Err(Error::pipeline(
                pipeline,
                format!(
                    "already running in flowline process {}; wait for it to finish",
                    std::process::id()
                ),
            ));
        }
        Ok(PipelineClaim {
            status: status.clone(),
            pipeline: pipeline.to_string(),
        })
    }
}

impl Drop for PipelineClaim {
    fn drop(&mut self) {
        let mut running = self
            .status
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        running.remove(&self.pipeline);
    }
}

async fn accept_loop(
    listener: UnixListener,
    uid: u32,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    tracing::warn!("a request failed: {e}");
                }
                continue;
            }
        };
        match accepted {
            Ok((stream, _)) => {
                let peer = stream.peer_cred().map(|c| c.uid());
                if peer.as_ref().ok() != Some(&uid) {
                    tracing::warn!("refused a connection from another user ({peer:?})");
                    continue;
                }
                connections.spawn(connection(stream, shared.clone(), stopped.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    drop(shared);
    while let Some(done) = connections.join_next().await {
        if let Err(e) = done {
            tracing::warn!("a request failed: {e}");
        }
    }
}

/// Answers one client's requests until it hangs up or the server stops.
async fn connection(stream: UnixStream, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let (mut reader, mut writer) = stream.into_split();
    loop {
        // Waiting for the next request ends when the server stops; a
        // request being answered is finished first.
        let frame = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            frame = read_frame_async(&mut reader) => frame,
        };
        let request = match frame {
            Ok(None) => return,
            Ok(Some(frame)) => frame.decode::<Request>(),
            Err(e) => Err(e),
        };
        let outcome = match request {
            Ok(request) => respond(request, &shared, &mut writer).await,
            Err(e) => {
                let message = format!("unreadable request: {e}");
                let _ = write_frame_async(&mut writer, &Response::Error { message }, &[]).await;
                return;
            }
        };
        if let Err(e) = outcome {
            tracing::debug!("a local client went away: {e}");
            return;
        }
    }
}

/// Runs `work` (which blocks: DuckDB, SQLite) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::task("the request"))?
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    answer: Result<Response>,
    payload: &[u8],
) -> std::io::Result<()> {
    match answer {
        Ok(response) => write_frame_async(writer, &response, payload).await,
        Err(e) => {
            let message = crate::core::secrets::redact(&e.to_string());
            write_frame_async(writer, &Response::Error { message }, &[]).await
        }
    }
}

async fn respond<W: AsyncWrite + Unpin>(
    request: Request,
    shared: &Arc<Shared>,
    writer: &mut W,
) -> std::io::Result<()> {
    let warehouse = shared.warehouse.clone();
    match request {
        Request::Ping => send(writer, Ok(Response::Pong(shared.owner())), &[]).await,
        Request::Query { sql } => {
            tracing::debug!("query from a local client: {sql}");
            let result = blocking(move || {
                let result = warehouse.query(&sql)?;
                to_ipc(&result.schema, &result.batches)
            })
            .await;
            match result {
                Ok(bytes) => send(writer, Ok(Response::QueryResult), &bytes).await,
                Err(e) => send(writer, Err(e), &[]).await,
            }
        }
        Request::Execute { statements } => {
            tracing::debug!("{} statements from a local client", statements.len());
            let done = blocking(move || warehouse.execute(&statements)).await;
            send(writer, done.map(|()| Response::Executed), &[]).await
        }
        Request::SavedState { pipeline } => {
            let saved = blocking(move || warehouse.saved_state(&pipeline)).await;
            let answer = saved.map(|saved| Response::SavedState {
                saved: saved.map(Into::into),
            });
            send(writer, answer, &[]).await
        }
        Request::ResetState { pipeline } => {
            let answer = match shared.status.refuse_running(&pipeline) {
                Err(e) => Err(e),
                Ok(()) => blocking(move || warehouse.reset_state(&pipeline)).await,
            };
            send(
                writer,
                answer.map(|existed| Response::StateReset { existed }),
                &[],
            )
            .await
        }
        Request::TableExists { schema, table } => {
            let table = TableName { schema, table };
            let exists = blocking(move || warehouse.table_exists(&table)).await;
            send(
                writer,
                exists.map(|exists| Response::TableExists { exists }),
                &[],
            )
            .await
        }
        Request::Run {
            pipelines,
            full_refresh,
        } => run(shared, pipelines, RunOptions { full_refresh }, writer).await,
    }
}

/// Runs pipelines for a client, sending each record as its pipeline ends.
/// The project is read again, so pipeline files changed since this process
/// started are run as they are now.
async fn run<W: AsyncWrite + Unpin>(
    shared: &Arc<Shared>,
    names: Vec<String>,
    options: RunOptions,
    writer: &mut W,
) -> std::io::Result<()> {
    let dir = shared.project.dir.clone();
    let project = match blocking(move || Project::load(&dir)).await {
        Ok(project) => project,
        Err(e) => return send(writer, Err(e), &[]).await,
    };
    let selected = match names
        .iter()
        .map(|name| project.pipeline(name))
        .collect::<Result<Vec<_>>>()
    {
        Ok(selected) => selected,
        Err(e) => return send(writer, Err(e), &[]).await,
    };
    if !selected.is_empty() {
        tracing::info!("running {} for a local client", names.join(", "));
    }
    let progress = Progress::new(false);
    for pipeline in selected {
        // Refused without a record, as `flowline run` does.
        let claim = match pipeline.config.mode {
            crate::core::Mode::Stream => Err(Error::pipeline(
                &pipeline.name,
                format!(
                    "a stream pipeline: run it with `flowline stream {}`",
                    pipeline.name
                ),
            )),
            crate::core::Mode::Batch => PipelineClaim::take(&shared.status, &pipeline.name),
        };
        let record = match claim {
            Ok(_claim) => {
                run_one(
                    &project,
                    pipeline,
                    shared.warehouse.as_ref(),
                    shared.store.as_ref(),
                    options,
                    &progress,
                )
                .await
            }
            Err(e) => refused(&pipeline.name, &e),
        };
        let record = WireRun::from(&record);
        send(writer, Ok(Response::RunRecord { record }), &[]).await?;
    }
    send(writer, Ok(Response::RunDone), &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::client::LocalClient;
    use crate::state::open_state_store;

    fn project(dir: &Path) -> Arc<Project> {
        std::fs::create_dir_all(dir.join("pipelines")).expect("mkdir");
        std::fs::write(dir.join("flowline.toml"), "[project]\nname = \"unit\"\n").expect("write");
        std::fs::write(
            dir.join("pipelines/orders.toml"),
            "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
        )
        .expect("write");
        Arc::new(Project::load(dir).expect("project"))
    }

    async fn start(project: &Arc<Project>) -> LocalServer {
        let warehouse: Arc<dyn Warehouse> = Arc::from(project.open_warehouse().expect("warehouse"));
        let store: Arc<dyn StateStore> = Arc::from(open_state_store(project).expect("store"));
        let server = serve(project.clone(), warehouse, store)
            .await
            .expect("serve");
        server.set_activity("unit test");
        server
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn clients_query_the_owner_until_it_shuts_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = project(dir.path());
        let server = start(&project).await;
        let asking = project.clone();
        let (owner, answer) = tokio::task::spawn_blocking(move || {
            let mut client = LocalClient::connect(&asking)
                .expect("connect")
                .expect("owner");
            let answer = client.query("select 42 as answer").expect("query");
            (client.owner().clone(), answer)
        })
        .await
        .expect("client");
        assert_eq!(owner.pid, std::process::id());
        assert_eq!(owner.project, "unit");
        assert_eq!(owner.activity, "unit test");
        assert_eq!(answer.schema.field(0).name(), "answer");
        assert_eq!(answer.batches[0].num_rows(), 1);

        let path = server.socket_path().to_path_buf();
        server.shutdown().await;
        assert!(!path.exists());
        let asking = project.clone();
        let after = tokio::task::spawn_blocking(move || LocalClient::connect(&asking))
            .await
            .expect("client");
        assert!(after.expect("no error").is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_second_owner_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = project(dir.path());
        let _server = start(&project).await;
        let Err(error) = bind(project.clone()).await else {
            panic!("a second bind succeeded");
        };
        assert!(
            error.to_string().starts_with(&format!(
                "another flowline process (pid {}) owns this project's warehouse (unit test)",
                std::process::id()
            )),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_claimed_pipeline_is_not_run_again_for_a_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = project(dir.path());
        let server = start(&project).await;
        let claim = server.claim("orders").expect("claim");
        assert!(server.claim("orders").is_err());
        assert_eq!(server.running(), vec!["orders".to_string()]);
        let asking = project.clone();
        let records = tokio::task::spawn_blocking(move || {
            let mut client = LocalClient::connect(&asking)
                .expect("connect")
                .expect("owner");
            assert_eq!(client.owner().running, vec!["orders".to_string()]);
            client.run(&["orders".into()], RunOptions::default(), |_| {})
        })
        .await
        .expect("client")
        .expect("run");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].status, crate::state::RunStatus::Failed);
        let error = records[0].error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("already running in flowline process"),
            "{error}"
        );
        drop(claim);
        assert!(server.running().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_state_of_a_running_pipeline_is_not_reset_for_a_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let project = project(dir.path());
        let server = start(&project).await;
        let claim = server.claim("orders").expect("claim");
        let asking = project.clone();
        let reset = move || {
            let mut client = LocalClient::connect(&asking)
                .expect("connect")
                .expect("owner");
            client.reset_state("orders")
        };
        let refused = tokio::task::spawn_blocking(reset.clone())
            .await
            .expect("client")
            .expect_err("refused while running");
        assert!(
            refused
                .to_string()
                .contains("stop it before resetting its state"),
            "{refused}"
        );
        drop(claim);
        let existed = tokio::task::spawn_blocking(reset)
            .await
            .expect("client")
            .expect("reset");
        assert!(!existed, "nothing was saved");
    }
}
