//! The MongoDB server of the tests: nx-27017 (a MongoDB wire-protocol
//! server on SQLite, from PyPI), installed by `scripts/setup-mongo-test-server`
//! into `target/nx-27017`.
//!
//! - [`shared_uri`]: one server per test process, started on first use;
//!   `MONGO_TEST_URI` points the tests at a real MongoDB instead.
//! - [`NxServer`]: a server a test owns, to stop and start again on the
//!   same port and data (outage tests).
//!
//! Each server runs under a small shell supervisor that blocks reading its
//! stdin, a pipe whose only write end the test process holds (std opens
//! pipes close-on-exec, so no other child inherits it). When the test
//! process ends, however it ends, the kernel closes that end, the
//! supervisor sees EOF and kills the server. A static value is never
//! dropped, so the kernel has to be the one to tell. SIGKILL, because
//! nx-27017 0.8.1 may hang on SIGTERM while a client connection is open.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long nx-27017 may take to listen (Python starts slowly on a busy
/// 2-core machine).
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);

const SUPERVISOR: &str = r#"
bin=$1 dir=$2 port=$3 keep=$4
mkdir -p "$dir/data"
"$bin" --data-dir "$dir/data" --host 127.0.0.1 -p "$port" \
    --log-file "$dir/nx-27017.log" --pid-file "$dir/nx-27017.pid" >"$dir/output.log" 2>&1 &
pid=$!
cat >/dev/null
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ "$keep" = keep ] || rm -rf "$dir"
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The nx-27017 executable, or a panic that says how to install it.
pub fn binary() -> PathBuf {
    let bin = repo().join("target/nx-27017/bin/nx-27017");
    assert!(
        bin.exists(),
        "nx-27017 is not installed: run scripts/setup-mongo-test-server \
         (scripts/test does), or set MONGO_TEST_URI"
    );
    bin
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("a bound address").port()
}

/// The URI of a server on `port` of this machine.
pub fn uri_for(port: u16) -> String {
    format!("mongodb://127.0.0.1:{port}/?directConnection=true")
}

/// A running nx-27017 owned by a test.
#[derive(Debug)]
pub struct NxServer {
    port: u16,
    dir: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl NxServer {
    /// Starts a server on `port` keeping its data in `dir` (kept when the
    /// server stops, so a server started again on it has the same data).
    pub fn start(port: u16, dir: &Path) -> Self {
        Self::spawn(port, dir, true)
    }

    /// Starts a server on a free port with data in a fresh temporary
    /// directory, removed when the server stops.
    pub fn start_temporary() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mozaiks-nx-27017-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        Self::spawn(free_port(), &dir, false)
    }

    fn spawn(port: u16, dir: &Path, keep: bool) -> Self {
        let bin = binary();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("nx-27017-supervisor")
            .arg(&bin)
            .arg(dir)
            .arg(port.to_string())
            .arg(if keep { "keep" } else { "drop" })
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        wait_until_listening(&mut child, SocketAddr::from(([127, 0, 0, 1], port)), dir);
        Self {
            port,
            dir: dir.to_owned(),
            child,
            stdin,
        }
    }

    /// Its URI.
    pub fn uri(&self) -> String {
        uri_for(self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for NxServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

static SHARED: OnceLock<String> = OnceLock::new();

/// The URI of the server shared by every test of this process, started on
/// first use; `MONGO_TEST_URI` when set.
pub fn shared_uri() -> &'static str {
    SHARED.get_or_init(|| {
        if let Ok(uri) = std::env::var("MONGO_TEST_URI")
            && !uri.trim().is_empty()
        {
            return uri.trim().to_owned();
        }
        let server = NxServer::start_temporary();
        let uri = server.uri();
        // Lives until the process ends; the supervisor then stops it.
        std::mem::forget(server);
        uri
    })
}

fn wait_until_listening(child: &mut Child, addr: SocketAddr, dir: &Path) {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let mut output = String::new();
            if let Ok(mut file) = std::fs::File::open(dir.join("output.log")) {
                let _ = file.read_to_string(&mut output);
            }
            panic!(
                "nx-27017 did not listen on {addr} within {STARTUP_DEADLINE:?} \
                 (supervisor exit: {exited:?}); its output:\n{output}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
