//! The processes a realtime run talks to: `elements` nodes (the release
//! binary, each a child process so its RSS is its own) and a `nats-server`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Request, call};

/// A running `elements` node.
pub struct Node {
    child: Child,
    /// Its public listener.
    pub addr: SocketAddr,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start one node.
pub struct NodeOptions<'a> {
    /// The run's folder: the store (`data/`), shared by every node started
    /// on it, and the configuration file.
    pub dir: &'a Path,
    /// The bench's configuration file's text.
    pub config: &'a str,
    /// `--nats-url`, for a cluster.
    pub nats_url: Option<&'a str>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the release `elements` binary and waits until `/health` answers.
pub async fn start(options: &NodeOptions<'_>) -> Node {
    let port = free_port();
    let config = options.dir.join("elements.toml");
    std::fs::write(&config, options.config).expect("bench configuration");
    let deploy = options.dir.join("deploy");
    std::fs::create_dir_all(&deploy).expect("deploy folder");
    let mut command = Command::new(env!("CARGO_BIN_EXE_elements"));
    command
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--deploy-dir")
        .arg(&deploy)
        .arg("--data-dir")
        .arg(options.dir.join("data"))
        .arg("--cache-dir")
        .arg(options.dir.join("cache"))
        // Tokens outlive the run (a socket closes when its token expires),
        // and nothing is deployed: no need to poll for deployments often.
        .args(["--token-expiry-secs", "86400", "--deploy-poll-ms", "60000"])
        .args(["--log", "warn"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = options.nats_url {
        command.args(["--nats-url", url]);
    }
    let mut child = command.spawn().expect("starting the release elements binary");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited with {status} before it answered");
        }
        if call(addr, Request::get("/health")).await.0 == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not answer /health within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Node { child, addr }
}

/// A process's resident memory in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "status", "VmRSS:").unwrap_or(0)
}

/// CPU time (user + system) a process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces): state is
    // the first, utime and stime the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / per_second
}

/// A process's soft open-file limit, from `/proc/PID/limits`.
pub fn open_file_limit(pid: u32) -> Option<u64> {
    proc_field(pid, "limits", "Max open files")
}

fn proc_field(pid: u32, file: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Raises this process's soft open-file limit to its hard limit (the
/// client holds one descriptor per socket); returns the limit now.
#[allow(clippy::unnecessary_cast)]
pub fn raise_own_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur as u64
}

/// A `nats-server` (Debian's package, as `runtime/tests/cluster.rs` uses)
/// on a free loopback port, with JetStream stored in its own folder.
pub struct Nats {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

fn nats_binary() -> PathBuf {
    let debian = Path::new("/usr/sbin/nats-server");
    if debian.exists() {
        debian.to_owned()
    } else {
        PathBuf::from("nats-server")
    }
}

impl Nats {
    /// `None` when no `nats-server` can be started.
    pub fn start() -> Option<Nats> {
        let store = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nats {
            child,
            port,
            _store: store,
        })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
