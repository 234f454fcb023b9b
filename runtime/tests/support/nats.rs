//! A real `nats-server` (Debian's package; `cargo xtask test` installs it)
//! for the tests of several nodes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::closed_port;

/// A `nats-server` with JetStream, stored in a folder of its own so a
/// restart keeps its streams.
pub struct Nats {
    child: Child,
    pub port: u16,
    store: tempfile::TempDir,
    /// JetStream's storage budget, when not nats-server's default (75% of
    /// the free disk).
    max_file_store: Option<&'static str>,
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
    pub fn start() -> Nats {
        Nats::start_with(None)
    }

    /// A server whose JetStream may keep at most `max_file_store` (in
    /// nats-server's units, e.g. `100MB`).
    pub fn with_storage(max_file_store: &'static str) -> Nats {
        Nats::start_with(Some(max_file_store))
    }

    fn start_with(max_file_store: Option<&'static str>) -> Nats {
        let store = tempfile::tempdir().unwrap();
        let port = closed_port();
        let child = Nats::launch(port, store.path(), max_file_store);
        Nats {
            child,
            port,
            store,
            max_file_store,
        }
    }

    fn launch(port: u16, store: &Path, max_file_store: Option<&str>) -> Child {
        let mut command = Command::new(nats_binary());
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store);
        if let Some(max) = max_file_store {
            let config = store.join("nats.conf");
            std::fs::write(&config, format!("jetstream {{\n  max_file_store: {max}\n}}\n")).unwrap();
            command.arg("-c").arg(config);
        }
        // Its log, appended across restarts, is printed if the test fails.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(store.join("nats.log"))
            .unwrap();
        let child =
            command.stdout(Stdio::null()).stderr(log).spawn().expect(
                "starting nats-server (the Debian package nats-server; `cargo xtask test` installs it)",
            );
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A plain client of the cluster (prefix `elements`), as a node's
    /// neighbour or an attacker would be, once it is connected.
    pub async fn client(&self) -> std::sync::Arc<elements_cluster::Cluster> {
        let client = elements_cluster::Cluster::connect(&elements_cluster::ClusterConfig {
            url: self.url(),
            prefix: "elements".into(),
        })
        .await
        .unwrap();
        let started = Instant::now();
        while !client.is_connected() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never connected to NATS"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Starts it again, after [`Nats::kill`], on the same port and store.
    pub fn start_again(&mut self) {
        self.child = Nats::launch(self.port, self.store.path(), self.max_file_store);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.store.path().join("nats.log")).unwrap_or_default();
            eprintln!("---- nats-server's log ----\n{log}");
        }
    }
}
