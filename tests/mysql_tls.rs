//! TLS to MySQL and MariaDB (`sslmode`, `ssl-mode`, `sslrootcert` in the
//! connection URL) against real servers: a MariaDB with TLS on that the test
//! starts on a free port, with a certificate authority and a server
//! certificate made by the `openssl` CLI, and the machine's MariaDB on
//! 127.0.0.1:3306, which has TLS off.

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestProject, my_execute, service};

/// The server certificate names `localhost` only: `verify-full` succeeds
/// through `localhost` and fails through `127.0.0.1`.
const SERVER_NAMES: &str = "DNS:localhost";

/// Where a program is: on `PATH`, or in the sbin folders Debian installs
/// `mariadbd` to.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The programs the TLS server needs, or `None` when one is missing: under
/// CI that fails the test naming it; elsewhere the test is skipped.
fn tools() -> Option<[PathBuf; 3]> {
    let found = ["openssl", "mariadb-install-db", "mariadbd"].map(|name| (name, program(name)));
    let missing: Vec<&str> = found
        .iter()
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        common::skip(&format!(
            "the MySQL TLS tests need {} (Debian packages openssl and mariadb-server)",
            missing.join(", ")
        ));
        return None;
    }
    Some(found.map(|(_, path)| path.unwrap_or_default()))
}

/// Runs a setup command, failing the test with its output.
fn run(command: &mut Command) {
    let out = command.output().expect("start a setup command");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a self-signed certificate authority: `<name>.pem` and `<name>.key`.
fn make_ca(openssl: &Path, dir: &Path, name: &str) {
    run(Command::new(openssl)
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ])
        .args(["-subj", &format!("/CN=flowline {name}")])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
}

/// Makes `server.pem` and `server.key`, signed by the authority `ca`.
fn make_server_certificate(openssl: &Path, dir: &Path) {
    run(Command::new(openssl)
        .current_dir(dir)
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes"])
        .args(["-keyout", "server.key", "-out", "server.csr"])
        .args(["-subj", "/CN=localhost"]));
    std::fs::write(
        dir.join("server.ext"),
        format!(
            "subjectAltName={SERVER_NAMES}\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("write the extensions file");
    run(Command::new(openssl)
        .current_dir(dir)
        .args(["x509", "-req", "-in", "server.csr", "-days", "2"])
        .args(["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"])
        .args(["-extfile", "server.ext", "-out", "server.pem"]));
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A MariaDB with TLS on, in a temporary folder; killed when dropped.
struct TlsMariadb {
    server: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsMariadb {
    /// Makes the certificates (`ca.pem` signs the server's; `other-ca.pem`
    /// signs nothing), creates a data folder and starts the server.
    fn start([openssl, install_db, mariadbd]: &[PathBuf; 3]) -> TlsMariadb {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        make_ca(openssl, d, "ca");
        make_ca(openssl, d, "other-ca");
        make_server_certificate(openssl, d);
        let as_root = unsafe { libc::geteuid() } == 0;
        let user: &[&str] = if as_root { &["--user=root"] } else { &[] };
        run(Command::new(install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user));
        let port = free_port();
        let mut command = Command::new(mariadbd);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
            .arg(format!("--ssl-cert={}", d.join("server.pem").display()))
            .arg(format!("--ssl-key={}", d.join("server.key").display()))
            .args(["--skip-name-resolve", "--innodb-buffer-pool-size=16M"])
            .args(user)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // If the test process dies without unwinding, the server goes too.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let server = command.spawn().expect("start mariadbd");
        let mut db = TlsMariadb { server, port, dir };
        db.wait_until_ready();
        db
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = ([127, 0, 0, 1], self.port).into();
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                panic!("mariadbd exited ({status}):\n{}", self.log());
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd is not listening on port {} after 30 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// A file of the temporary folder (certificates), as a URL parameter value.
    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `mysql://root@{host}:{port}/shop` followed by `params`.
    fn url(&self, host: &str, params: &str) -> String {
        format!("mysql://root@{host}:{}/shop{params}", self.port)
    }
}

impl Drop for TlsMariadb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A project whose connection `db` has `url`, with two pipelines: `items`
/// copies the table `items`, `cipher` records the session's TLS cipher
/// (empty when the session is not encrypted).
fn project(url: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/items.toml",
        "[source]\nkind = \"mysql\"\nconnection = \"db\"\ntable = \"items\"\n\n\
         [destination]\ntable = \"items\"\nwrite = \"replace\"\n",
    );
    p.write(
        "pipelines/cipher.toml",
        "[source]\nkind = \"mysql\"\nconnection = \"db\"\n\
         query = \"SELECT variable_value AS cipher FROM information_schema.session_status \
         WHERE variable_name = 'SSL_CIPHER'\"\n\n\
         [destination]\ntable = \"cipher\"\nwrite = \"replace\"\n",
    );
    connect_with(&p, url);
    p
}

/// Points the connection `db` at `url`.
fn connect_with(p: &TestProject, url: &str) {
    p.write(
        "flowline.toml",
        format!("[project]\nname = \"tls\"\n\n[connections.db]\nurl = \"{url}\"\n"),
    );
}

/// The TLS cipher of a flowline session over the connection `db`, read by
/// `flowline run cipher`; empty when the session is not encrypted.
fn session_cipher(p: &TestProject) -> String {
    p.ok(&["run", "cipher"]);
    let rows = p.query("select cipher from cipher");
    rows.first()
        .and_then(|row| row["cipher"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn tls_modes_against_a_mariadb_with_tls_on() {
    let Some(tools) = tools() else {
        return;
    };
    let db = TlsMariadb::start(&tools);
    my_execute(
        &format!("mysql://root@127.0.0.1:{}", db.port),
        "CREATE DATABASE shop;
         CREATE TABLE shop.items (id int PRIMARY KEY, name varchar(20), price decimal(8,2));
         INSERT INTO shop.items VALUES (1, 'kettle', 24.90), (2, 'mug', 6.50), (3, 'teapot', 31.00);",
    );
    let ca = db.file("ca.pem");
    let other_ca = db.file("other-ca.pem");

    // require: encrypted, the certificate unchecked (it is not from a public authority).
    let p = project(&db.url("127.0.0.1", "?sslmode=require"));
    let out = p.ok(&["connections", "test", "db"]);
    assert!(out.contains("MariaDB"), "{out}");
    let cipher = session_cipher(&p);
    assert!(
        !cipher.is_empty(),
        "sslmode=require gave an unencrypted session"
    );

    // MySQL's spelling of the same.
    connect_with(&p, &db.url("127.0.0.1", "?ssl-mode=REQUIRED"));
    assert!(!session_cipher(&p).is_empty(), "ssl-mode=REQUIRED");

    // The default, prefer, encrypts when the server can.
    connect_with(&p, &db.url("127.0.0.1", ""));
    assert!(!session_cipher(&p).is_empty(), "sslmode=prefer (default)");

    // disable never does.
    connect_with(&p, &db.url("127.0.0.1", "?sslmode=disable"));
    assert_eq!(session_cipher(&p), "", "sslmode=disable");

    // verify-full through the name the certificate holds: a whole pipeline.
    connect_with(
        &p,
        &db.url(
            "localhost",
            &format!("?sslmode=verify-full&sslrootcert={ca}"),
        ),
    );
    let out = p.ok(&["connections", "test", "db"]);
    assert!(out.contains("MariaDB"), "{out}");
    let out = p.ok(&["run", "items"]);
    assert!(out.contains("3 rows"), "{out}");
    assert_eq!(p.scalar("select count(*) from items"), 3);
    assert_eq!(
        p.query("select name from items where price = 31.00")[0]["name"],
        "teapot"
    );
    assert!(!session_cipher(&p).is_empty(), "sslmode=verify-full");

    // verify-full through an address the certificate does not name.
    connect_with(
        &p,
        &db.url(
            "127.0.0.1",
            &format!("?sslmode=verify-full&sslrootcert={ca}"),
        ),
    );
    let err = p.fails(&["connections", "test", "db"]);
    assert!(
        err.contains(&format!(
            "mysql at 127.0.0.1:{}: TLS: certificate not valid for 127.0.0.1",
            db.port
        )),
        "{err}"
    );
    assert!(err.contains("(it names localhost)"), "{err}");

    // verify-ca checks the authority, not the name: the same address works.
    connect_with(
        &p,
        &db.url("127.0.0.1", &format!("?ssl-mode=VERIFY_CA&ssl-ca={ca}")),
    );
    let out = p.ok(&["connections", "test", "db"]);
    assert!(out.contains("MariaDB"), "{out}");
    assert!(!session_cipher(&p).is_empty(), "ssl-mode=VERIFY_CA");

    // verify-ca with an authority that did not sign the certificate.
    connect_with(
        &p,
        &db.url(
            "127.0.0.1",
            &format!("?sslmode=verify-ca&sslrootcert={other_ca}"),
        ),
    );
    let err = p.fails(&["connections", "test", "db"]);
    assert!(
        err.contains("TLS: unknown certificate authority")
            && err.contains(&format!("sslrootcert {other_ca}")),
        "{err}"
    );
    let err = p.fails(&["run", "items"]);
    assert!(err.contains("TLS: unknown certificate authority"), "{err}");

    // verify-full without sslrootcert trusts the public authorities only.
    connect_with(&p, &db.url("localhost", "?sslmode=verify-full"));
    let err = p.fails(&["connections", "test", "db"]);
    assert!(
        err.contains("TLS: unknown certificate authority") && err.contains("set sslrootcert="),
        "{err}"
    );

    // verify-ca needs the authority to trust.
    connect_with(&p, &db.url("127.0.0.1", "?sslmode=verify-ca"));
    let err = p.fails(&["connections", "test", "db"]);
    assert!(
        err.contains("sslmode=verify-ca needs sslrootcert="),
        "{err}"
    );

    // A root certificate file that is not one.
    connect_with(
        &p,
        &db.url(
            "localhost",
            &format!("?sslmode=verify-full&sslrootcert={}", db.file("server.ext")),
        ),
    );
    let err = p.fails(&["connections", "test", "db"]);
    assert!(err.contains("server.ext: no certificate in it"), "{err}");
}

#[test]
fn tls_modes_against_a_mariadb_with_tls_off() {
    if !service("MariaDB", "127.0.0.1:3306") {
        return;
    }
    let p = project("mysql://root:tls-test-secret@127.0.0.1:3306/?sslmode=require");
    let err = p.fails(&["connections", "test", "db"]);
    assert!(
        err.contains(
            "mysql at 127.0.0.1:3306: TLS required (sslmode=require) but the server does not support it"
        ),
        "{err}"
    );
    assert!(
        !err.contains("tls-test-secret"),
        "the password leaked: {err}"
    );

    connect_with(&p, "mysql://root@127.0.0.1:3306/?ssl-mode=VERIFY_IDENTITY");
    let err = p.fails(&["connections", "test", "db"]);
    assert!(
        err.contains("TLS required (ssl-mode=VERIFY_IDENTITY) but the server does not support it"),
        "{err}"
    );

    // The default, prefer, connects unencrypted.
    connect_with(&p, "mysql://root@127.0.0.1:3306/");
    let out = p.ok(&["connections", "test", "db"]);
    assert!(out.contains("MariaDB"), "{out}");
    assert_eq!(session_cipher(&p), "");
}
