//! Test support: build guest Elements, start the real `elements` binary on an
//! ephemeral port with a deploy folder of our choosing, and read its log.
//! One module each concept: [`client`] (requests and their replies),
//! [`accounts`] (`root` and signing in), [`component`] (changed guest
//! components), [`browser`] (a WebDriver session), [`roblox`] (a stub of the
//! Roblox users API), [`socket`] (the realtime socket as a client), [`providers`] (stubs of the login providers), and here the server process and its folders.

#![allow(dead_code)]

pub mod accounts;
pub mod browser;
pub mod client;
pub mod component;
pub mod nats;
pub mod providers;
pub mod roblox;
pub mod socket;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use accounts::{ROOT_ENV, ROOT_PASSWORD, login, root_secret, root_server, secret};
#[allow(unused_imports)]
pub use client::{
    Reply, SERVER_KEY, admin_request, element_log, json, raw_request, request, request_full, retry_after,
};
#[allow(unused_imports)]
pub use component::variant;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Guest crates the tests deploy.
const GUESTS: &[&str] = &[
    "hello",
    "leaderboard",
    "misbehave",
    "hostile",
    "wasi-http",
    "roblox-kit",
    "email-verification",
    "turn-relay",
];

/// The workspace's target folder (integration tests get `target/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .to_owned()
}

/// Path of the compiled component of guest crate `name`, building every test
/// guest once per test binary (cargo makes concurrent builds wait).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let guest_target = target_dir().join("guests");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&guest_target);
        for g in GUESTS {
            cmd.args(["-p", g]);
        }
        let status = cmd.status().expect("running cargo to build the test Elements");
        assert!(status.success(), "building the test Elements failed (is the wasm32-wasip2 target installed? `cargo xtask test` installs it)");
        guest_target.join("wasm32-wasip2").join("release")
    });
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// A cache folder shared by the tests that don't test the cache itself.
pub fn shared_cache() -> PathBuf {
    target_dir().join("tmp").join("elements-test-cache")
}

/// A server's folders; keep it to restart a server on the same data.
pub struct Dirs {
    pub root: tempfile::TempDir,
    pub cache: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join("deploy")).unwrap();
        Dirs {
            root,
            cache: shared_cache(),
        }
    }

    /// Folders with a cache of their own.
    pub fn with_own_cache() -> Dirs {
        let mut dirs = Dirs::new();
        dirs.cache = dirs.root.path().join("cache");
        dirs
    }

    pub fn deploy_dir(&self) -> PathBuf {
        self.root.path().join("deploy")
    }

    /// Puts guest `crate_name` in the deploy folder as `name`, with a manifest.
    pub fn deploy(&self, name: &str, crate_name: &str, manifest: &str) -> &Self {
        std::fs::copy(guest(crate_name), self.deploy_dir().join(format!("{name}.wasm"))).unwrap();
        self.manifest(name, manifest)
    }

    /// Writes raw bytes as `name.wasm`.
    pub fn deploy_bytes(&self, name: &str, bytes: &[u8]) -> &Self {
        std::fs::write(self.deploy_dir().join(format!("{name}.wasm")), bytes).unwrap();
        self
    }

    /// Puts bundled Element `crate_name` (from `elements/`) in the deploy
    /// folder as `name`, with its own `element.toml` plus these `[values]`.
    pub fn deploy_bundled(&self, name: &str, crate_name: &str, values: &[(&str, &str)]) -> &Self {
        let mut manifest = bundled_manifest(crate_name);
        manifest.push_str("\n[values]\n");
        for (key, value) in values {
            manifest.push_str(&format!("{key:?} = {value:?}\n"));
        }
        self.deploy(name, crate_name, &manifest)
    }

    /// Writes the server's configuration file; every server started on
    /// these folders reads it (`--config`).
    pub fn config(&self, toml: &str) -> &Self {
        std::fs::write(self.config_path(), toml).unwrap();
        self
    }

    fn config_path(&self) -> PathBuf {
        self.root.path().join("elements.toml")
    }

    pub fn manifest(&self, name: &str, manifest: &str) -> &Self {
        if !manifest.is_empty() {
            std::fs::write(self.deploy_dir().join(format!("{name}.toml")), manifest).unwrap();
        }
        self
    }
}

/// A configuration-file section approving `grants` for the Element `name`.
pub fn grants_section(name: &str, grants: &[&str]) -> String {
    let list: Vec<String> = grants.iter().map(|g| format!("{g:?}")).collect();
    format!("[elements.{name:?}]\ngrants = [{}]\n", list.join(", "))
}

/// The grants the default configuration approves for the Roblox Kit.
pub const ROBLOX_KIT_GRANTS: &[&str] = &[
    "identity.scheme:dev.getelements.robloxkit.player.id",
    "identity.session",
    "http.outbound:users.roblox.com",
    "http.outbound:thumbnails.roblox.com",
];

/// The `element.toml` of bundled Element `crate_name` (in `elements/`).
pub fn bundled_manifest(crate_name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("elements")
        .join(crate_name)
        .join("element.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A running `elements` process.
pub struct Server {
    child: Child,
    /// The public listener (Element content, client APIs).
    pub addr: String,
    /// The admin listener (portal, deployment admin API).
    pub admin_addr: String,
    output: Arc<Mutex<String>>,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts the server on `dirs` with extra flags.
    pub fn start(dirs: &Dirs, flags: &[&str]) -> Server {
        Server::start_limited(dirs, flags, None)
    }

    /// Starts the server with its virtual address space capped at
    /// `address_space_kib` (`ulimit -v`), when given.
    pub fn start_limited(dirs: &Dirs, flags: &[&str], address_space_kib: Option<u64>) -> Server {
        Server::launch(dirs, flags, address_space_kib, &[], None)
    }

    /// Starts the server with extra environment variables and, when the
    /// suite runs against MongoDB, on the named database (so a restart sees
    /// the same data; `None`: a new database, as [`Server::start`]).
    pub fn start_with(dirs: &Dirs, flags: &[&str], env: &[(&str, &str)], database: Option<&str>) -> Server {
        Server::launch(dirs, flags, None, env, database)
    }

    fn launch(
        dirs: &Dirs,
        flags: &[&str],
        address_space_kib: Option<u64>,
        env: &[(&str, &str)],
        database: Option<&str>,
    ) -> Server {
        let mut command = match address_space_kib {
            Some(kib) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_elements"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_elements")),
        };
        // With ELEMENTS_MONGODB_URI set (CI does), the server inherits it and
        // each server gets a database of its own.
        if std::env::var("ELEMENTS_MONGODB_URI").is_ok_and(|u| !u.is_empty()) {
            let db = database
                .map(str::to_owned)
                .unwrap_or_else(|| format!("test_{}", uuid_like()));
            command.args(["--mongodb-database", &db]);
        }
        command.envs(env.iter().copied());
        if dirs.config_path().exists() {
            command.arg("--config").arg(dirs.config_path());
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--log", "info"])
            .arg("--deploy-dir")
            .arg(dirs.deploy_dir())
            .arg("--data-dir")
            .arg(dirs.root.path().join("data"))
            .arg("--cache-dir")
            .arg(&dirs.cache)
            .args(flags)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the elements binary");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let started = Instant::now();
        // The server logs the admin address, then the public one.
        let after = |log: &str, marker: &str| {
            log.lines().find_map(|l| {
                l.split(marker)
                    .nth(1)
                    .and_then(|a| a.split(['/', ' ']).next())
                    .map(str::to_owned)
            })
        };
        let (addr, admin_addr) = loop {
            {
                let log = output.lock().unwrap();
                if let Some(addr) = after(&log, "listening on http://") {
                    let admin = after(&log, "admin API on http://")
                        .unwrap_or_else(|| panic!("no admin listener in the log:\n{log}"));
                    break (addr, admin);
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "server exited with {status} before listening:\n{}",
                    output.lock().unwrap()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "server did not listen within 120 s:\n{}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child,
            addr,
            admin_addr,
            output,
            client: reqwest::Client::new(),
        }
    }

    /// `path` on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `path` on the admin listener (portal, deployment admin API).
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`, failing after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                started.elapsed() < timeout,
                "log never contained {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until one whole line of the log holds every one of `needles`,
    /// and returns it. Lines arrive one by one: waiting for one needle and
    /// then looking for a line with another can miss a line still on its way.
    pub fn wait_for_log_line(&self, needles: &[&str], timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            // The last line may be partly written: only lines ended by a newline count.
            let whole = &log[..log.rfind('\n').map_or(0, |end| end + 1)];
            if let Some(line) = whole.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_owned();
            }
            assert!(
                started.elapsed() < timeout,
                "no log line held all of {needles:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (`Child::kill` on Unix), as a crash
    /// would, and reaps it; the log stays readable.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server (SIGKILL-free: it is killed, but the tests that care
    /// about graceful shutdown do it themselves).
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process-unique name part.
pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The Python of the project's test venv (`ELEMENTS_VENV`, default
/// `~/.cache/elements/venv`), which `cargo xtask test` provisions.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ELEMENTS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/elements/venv")
        });
    venv.join("bin/python")
}

/// A real SMTP server on loopback (aiosmtpd) that stores what it receives in
/// a Maildir.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let python = venv_python();
        assert!(
            python.exists(),
            "{} is missing: `cargo xtask test` creates the test venv with aiosmtpd",
            python.display()
        );
        let maildir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.path().join(sub)).unwrap();
        }
        let port = closed_port();
        let child = Command::new(&python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting aiosmtpd");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not listen (is it installed in the venv?)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer { child, port, maildir }
    }

    /// Every message received so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.path().join(sub)) {
                for entry in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(entry.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    /// Waits for the first message.
    pub fn wait_for_message(&self, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(m) = self.messages().into_iter().next() {
                return m;
            }
            assert!(started.elapsed() < timeout, "no email arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (later sends fail to connect).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where `cargo xtask test` installs the real Nakama JavaScript client (`ELEMENTS_NPM` overrides).
pub fn nakama_js() -> Option<PathBuf> {
    let root = std::env::var_os("ELEMENTS_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/elements/npm")
        });
    let module = root.join("node_modules/@heroiclabs/nakama-js");
    module.join("package.json").exists().then_some(module)
}
