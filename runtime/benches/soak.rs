//! Soak benchmark: the release server binary (a child process, so its RSS
//! is its own) under a mixed load for minutes — new device logins, account
//! reads, Element calls and document writes — then idle, printing
//! throughput, p99, errors and RSS every window, and whether RSS came back
//! down after the load.
//!
//! `cargo xtask bench --bench soak`. Knobs: `SOAK_SECONDS` (load, default
//! 180), `SOAK_IDLE_SECONDS` (after, default 30), `SOAK_WINDOW_SECONDS`
//! (default 10), `BENCH_CONNECTIONS` (default 16). To profile the server
//! (heaptrack, valgrind), start it yourself with `hello` and `leaderboard`
//! deployed and point the load at it with `SOAK_ADDR` (and `SOAK_PID` for
//! its RSS): `SOAK_SERVER=1` prints the command line and deploy folder the
//! bench would use. The baseline, measured
//! in the same run, is the server's own native `/health` route. A figure,
//! not a pass/fail test.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Request, call, env_or, guest, run};

/// The default server key as the Basic user ("defaultkey:").
const SERVER_KEY_AUTH: &str = "Basic ZGVmYXVsdGtleTo=";

struct ServerProcess {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The server's command line, with `hello` and `leaderboard` deployed
/// under `dir`.
fn server_command(dir: &std::path::Path, port: u16) -> Command {
    let deploy = dir.join("deploy");
    std::fs::create_dir_all(&deploy).expect("deploy folder");
    for name in ["hello", "leaderboard"] {
        std::fs::copy(guest(name), deploy.join(format!("{name}.wasm"))).expect("copy guest");
    }
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/leaderboard/element.toml");
    std::fs::copy(manifest, deploy.join("leaderboard.toml")).expect("copy manifest");
    let mut command = Command::new(env!("CARGO_BIN_EXE_elements"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--deploy-dir")
        .arg(&deploy)
        .arg("--data-dir")
        .arg(dir.join("data"))
        // Tokens outlive the run.
        .args(["--token-expiry-secs", "86400", "--log", "warn"]);
    command
}

/// Starts the release binary with `hello` and `leaderboard` deployed.
fn start(dir: &std::path::Path) -> ServerProcess {
    let port = free_port();
    let child = server_command(dir, port)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server binary");
    ServerProcess {
        child,
        addr: ([127, 0, 0, 1], port).into(),
    }
}

/// The process's resident memory in MiB, from `/proc`: the whole set and
/// its anonymous part (heap, stacks, instance slots). The rest is file
/// pages, mostly the binary's own code, which the kernel shares with its
/// page cache and reclaims under pressure.
#[derive(Clone, Copy)]
struct Rss {
    total: f64,
    anon: f64,
}

fn rss_mib(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Rss {
        total: field("VmRSS:"),
        anon: field("RssAnon:"),
    }
}

fn main() {
    let load_secs = env_or("SOAK_SECONDS", 180);
    let idle_secs = env_or("SOAK_IDLE_SECONDS", 30);
    let window = env_or("SOAK_WINDOW_SECONDS", 10).max(1);
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    if std::env::var_os("SOAK_SERVER").is_some() {
        let keep = dir.keep();
        let command = server_command(&keep, free_port());
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        println!("{} {}", command.get_program().to_string_lossy(), args.join(" "));
        return;
    }
    // Spawned unless the caller runs the server (to profile it).
    let (_server, addr, pid) = match std::env::var("SOAK_ADDR") {
        Ok(addr) => {
            let addr = addr.parse().expect("SOAK_ADDR is host:port");
            let pid = std::env::var("SOAK_PID")
                .ok()
                .and_then(|p| p.parse().ok())
                .expect("SOAK_PID is the server's process id");
            (None, addr, pid)
        }
        Err(_) => {
            let server = start(dir.path());
            let (addr, pid) = (server.addr, server.child.id());
            (Some(server), addr, pid)
        }
    };
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Up, with both Elements mounted, and a few accounts to read.
    let tokens: Vec<String> = client.block_on(async {
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            let (status, _) = call(addr, Request::get("/app/rest/leaderboard/top")).await;
            if status == 200 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut tokens = Vec::new();
        for i in 0..16 {
            let body = format!(r#"{{"id":"soak-reader-{i:04}"}}"#);
            let request = Request::post_json("/v2/account/authenticate/device?create=true", body)
                .header("authorization", SERVER_KEY_AUTH);
            let (status, json) = call(addr, request).await;
            assert_eq!(status, 200, "device login: {json}");
            tokens.push(json["token"].as_str().expect("token").to_owned());
        }
        tokens
    });
    let tokens = Arc::new(tokens);

    let baseline = client.block_on(run(addr, connections, Duration::from_secs(5), |_| {
        Request::get("/health")
    }));
    let rss_start = rss_mib(pid);
    println!(
        "soak: {load_secs} s of mixed load, {connections} connections, then {idle_secs} s idle; \
         server pid {pid}"
    );
    println!(
        "baseline /health: {:.0} req/s, p99 {:.2} ms; RSS before load {:.1} MiB ({:.1} anonymous)",
        baseline.rate(),
        baseline.percentile(99.0) as f64 / 1000.0,
        rss_start.total,
        rss_start.anon
    );
    println!(
        "{:>6} {:>9} {:>8} {:>9} {:>7} {:>9} {:>10}",
        "t (s)", "req/s", "ratio", "p99 (ms)", "errors", "RSS (MiB)", "anonymous"
    );

    // One request in ten is a new account; the rest read accounts, call an
    // Element, and write documents (best scores of 1000 players).
    let make = {
        let tokens = tokens.clone();
        move |n: u64| match n % 10 {
            0 => Request::post_json(
                "/v2/account/authenticate/device?create=true",
                format!(r#"{{"id":"soak-device-{n:012}"}}"#),
            )
            .header("authorization", SERVER_KEY_AUTH),
            1..=3 => Request::get("/v2/account").header(
                "authorization",
                format!("Bearer {}", tokens[(n as usize / 10) % tokens.len()]),
            ),
            4..=6 => Request::get("/app/rest/hello/hello"),
            _ => Request::post_json(
                "/app/rest/leaderboard/scores",
                format!(r#"{{"player":"p{}","score":{n}}}"#, n % 1000),
            ),
        }
    };
    let started = Instant::now();
    let (mut total, mut errors) = (0u64, 0u64);
    let (mut peak, mut peak_anon) = (rss_start.total, rss_start.anon);
    let mut p99s = Vec::new();
    while started.elapsed() < Duration::from_secs(load_secs) {
        let result = client.block_on(run(addr, connections, Duration::from_secs(window), make.clone()));
        let rss = rss_mib(pid);
        peak = peak.max(rss.total);
        peak_anon = peak_anon.max(rss.anon);
        total += result.requests;
        errors += result.errors;
        let p99 = result.percentile(99.0) as f64 / 1000.0;
        p99s.push(p99);
        println!(
            "{:>6} {:>9.0} {:>7.3}x {:>9.2} {:>7} {:>9.1} {:>10.1}",
            started.elapsed().as_secs(),
            result.rate(),
            result.rate() / baseline.rate(),
            p99,
            result.errors,
            rss.total,
            rss.anon
        );
    }
    let load_elapsed = started.elapsed().as_secs_f64();
    let rss_end = rss_mib(pid);
    println!("idle:");
    let idle_started = Instant::now();
    let mut rss_idle = rss_end;
    while idle_started.elapsed() < Duration::from_secs(idle_secs) {
        std::thread::sleep(Duration::from_secs(window.min(5)));
        rss_idle = rss_mib(pid);
        println!(
            "{:>6} {:>9} {:>8} {:>9} {:>7} {:>9.1} {:>10.1}",
            (started.elapsed().as_secs()),
            "-",
            "-",
            "-",
            "-",
            rss_idle.total,
            rss_idle.anon
        );
    }
    p99s.sort_by(f64::total_cmp);
    println!(
        "summary: {total} requests ({:.0} req/s, {:.3}x /health), {errors} errors, worst window p99 {:.2} ms",
        total as f64 / load_elapsed,
        total as f64 / load_elapsed / baseline.rate(),
        p99s.last().copied().unwrap_or(0.0)
    );
    report(
        "RSS",
        rss_start.total,
        peak,
        rss_end.total,
        rss_idle.total,
        idle_secs,
    );
    report(
        "anonymous",
        rss_start.anon,
        peak_anon,
        rss_end.anon,
        rss_idle.anon,
        idle_secs,
    );
}

/// Prints what the load added to one memory figure and how much of it the
/// idle server gave back: "came back down" when at least half.
fn report(what: &str, start: f64, peak: f64, end: f64, idle: f64, idle_secs: u64) {
    let added = (peak - start).max(0.0);
    let returned = (peak - idle).max(0.0);
    let verdict = if returned * 2.0 >= added {
        "came back down"
    } else {
        "did NOT come back down"
    };
    println!(
        "{what}: {start:.1} MiB before, peak {peak:.1} MiB, {end:.1} MiB at the end of the load, \
         {idle:.1} MiB after {idle_secs} s idle: {returned:.1} of the {added:.1} MiB the load added \
         returned ({verdict})"
    );
}
