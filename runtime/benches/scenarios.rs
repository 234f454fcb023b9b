//! The server's benchmark: the scenarios issue 15 compares with Nakama
//! (logins, an account read, Element routes), each against the native
//! `GET /health` measured in the same run.
//!
//! The real server runs in-process (embedded SQLite, or MongoDB when
//! `ELEMENTS_MONGODB_URI` is set) behind its real listener; a closed-loop
//! load generator in its own thread speaks HTTP/1.1 to it over loopback
//! the way `wrk` does. Run with `cargo xtask bench --bench scenarios`
//! (builds the Elements first). Knobs: `BENCH_SECONDS` (per scenario,
//! default 5), `BENCH_ROUNDS` (default 5), `BENCH_CONNECTIONS` (default 16),
//! `BENCH_ONLY` (run only the scenarios whose name contains it, plus the
//! native route), `BENCH_METRICS` (0: the server records no metrics;
//! default 1), `BENCH_SERVER` (the address of a server already running, to
//! measure instead of this build in-process: e.g. the release binary),
//! `BENCH_BASELINE` (the address of another server, e.g. an earlier build,
//! measured in the same rounds: a before/after from one run). Servers
//! given by address must have the hello Element deployed as `hello` and
//! `hello-reuse` the way [`deploy_hello`] does.
//!
//! Prints req/s, p50 and p99 latency per scenario and its ratio to the
//! native route. Figures, not a pass/fail test. The machines here are
//! shared, and their speed swings by a third within minutes, so a ratio to
//! one native figure taken at the start would measure the swing as much as
//! the scenario: each scenario's time is cut into `BENCH_ROUNDS` windows,
//! each right after a window of the native route of the same length, and
//! its ratio is the median of the rounds' ratios (their range beside it).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Request, call, deploy_hello, env_or, measure, print_header, print_row, run, serve_in_process};
use elements_config::{Config, StoreChoice};

/// Accounts in the "existing account" pool.
const POOL: u64 = 1000;

/// Nakama's default server key, `defaultkey:` in base64.
const SERVER_KEY: &str = "Basic ZGVmYXVsdGtleTo=";

fn device_login(id: &str) -> Request {
    Request::post_json("/v2/account/authenticate/device", format!(r#"{{"id":"{id}"}}"#))
        .header("authorization", SERVER_KEY)
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let rounds = env_or("BENCH_ROUNDS", 5).max(1);
    let window = Duration::from_secs_f64((seconds as f64 / rounds as f64).max(0.5));
    let connections = env_or("BENCH_CONNECTIONS", 16) as usize;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::in_dir(dir.path());
    config.metrics = env_or("BENCH_METRICS", 1) != 0;
    if let Ok(uri) = std::env::var("ELEMENTS_MONGODB_URI")
        && !uri.is_empty()
    {
        let database = format!("bench_scenarios_{}", std::process::id());
        config.store = StoreChoice::Mongo { uri, database };
    }
    // The server under test: this build's, in-process behind its real
    // listener, or (`BENCH_SERVER`) one already running, e.g. the release
    // binary as operators run it, set up like the baseline below.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let external = address_from_env("BENCH_SERVER");
    let (addr, backend) = match external {
        Some(addr) => (addr, format!("the server at {addr}")),
        None => {
            deploy_hello(&config);
            let backend = match &config.store {
                StoreChoice::Sqlite => "sqlite",
                StoreChoice::Mongo { .. } => "mongodb",
            };
            (
                serve_in_process(&server_rt, &config),
                format!(
                    "this build in-process on {backend}, metrics {}",
                    if config.metrics { "on" } else { "off" }
                ),
            )
        }
    };
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let wants = |name: &str| only.is_empty() || name.contains(only.as_str());
    let pool = wants("device auth, existing account") || wants("GET /v2/account");
    let mut servers = vec![Server::new("server", addr, &client_rt, pool)];
    // Another server measured in the same rounds, e.g. an earlier build:
    // the before/after of a change from one run, on the same machine at
    // the same moments. It must serve this server's routes, with the hello
    // Element deployed as `hello` and `hello-reuse` (see `deploy_hello`).
    if let Some(baseline) = address_from_env("BENCH_BASELINE") {
        servers.push(Server::new("baseline", baseline, &client_rt, pool));
    }

    let process = std::process::id();
    let echo_body = r#"{"message":"hello","n":42}"#;
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("native GET /health", Arc::new(|_, _| Request::get("/health"))),
        (
            "device auth, new account",
            Arc::new(move |_, n| device_login(&format!("bench-new-{process}-{n}"))),
        ),
        (
            "device auth, existing account",
            Arc::new(|_, n| device_login(&format!("bench-pool-{}", n % POOL))),
        ),
        (
            "GET /v2/account",
            Arc::new(|tokens, n| {
                Request::get("/v2/account").header("authorization", tokens[(n % POOL) as usize].clone())
            }),
        ),
        (
            "echo Element, fresh",
            Arc::new(move |_, _| Request::post_json("/app/rest/hello/echo", echo_body)),
        ),
        (
            "echo Element, reused",
            Arc::new(move |_, _| Request::post_json("/app/rest/hello-reuse/echo", echo_body)),
        ),
        (
            "hello Element, fresh",
            Arc::new(|_, _| Request::get("/app/rest/hello/hello")),
        ),
        (
            "hello Element, reused",
            Arc::new(|_, _| Request::get("/app/rest/hello-reuse/hello")),
        ),
    ];

    println!(
        "{backend}, {connections} connections, {seconds} s per scenario after a 1 s warm-up, \
         in {rounds} rounds each after as long of the native route (ratio: median, range)"
    );
    if let Some(baseline) = servers.get(1) {
        println!(
            "baseline: the server at {}, measured in the same rounds (its rows follow the others; \
             the last column of the others is then also their req/s over the baseline's)",
            baseline.addr
        );
    }
    if servers.len() > 1 || external.is_some() {
        // Linux shares the CPU between sessions before threads (autogroups):
        // a server in a session of its own competes with this load generator
        // as a group, and measured 10-24% lower on this 2-core machine.
        println!(
            "servers given by address should run in this shell's session (started from it, not with \
             setsid or a service manager), as an in-process server does; see the README"
        );
    }
    print_header("/ native");
    let mut scenarios = scenarios.into_iter();
    let (native_name, native) = scenarios.next().expect("the native route comes first");
    for server in &servers {
        let result = measure(
            &client_rt,
            server.addr,
            connections,
            seconds,
            server.requests(&native),
        );
        print_row(&server.label(native_name), &result, "1.000x");
        assert_eq!(
            result.errors, 0,
            "{native_name} ({}): {} failed requests",
            server.name, result.errors
        );
    }
    for (name, scenario) in scenarios {
        if !wants(name) {
            continue;
        }
        if name == "GET /v2/account" {
            // Sessions last a minute by default, and with a baseline the
            // scenarios before this one take longer than that.
            for server in &mut servers {
                server.log_in_pool(&client_rt);
            }
        }
        let load = |server: &Server, scenario: &Scenario, duration| {
            client_rt.block_on(run(server.addr, connections, duration, server.requests(scenario)))
        };
        for server in &servers {
            load(server, &scenario, Duration::from_secs(1));
        }
        let mut ratios = vec![Vec::new(); servers.len()];
        let mut results: Vec<Vec<common::LoadResult>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, server) in servers.iter().enumerate() {
                let base = load(server, &native, window);
                let result = load(server, &scenario, window);
                ratios[i].push(result.rate() / base.rate());
                results[i].push(result);
            }
        }
        let totals: Vec<common::LoadResult> = results
            .into_iter()
            .map(|rounds| {
                rounds
                    .into_iter()
                    .reduce(common::LoadResult::merge)
                    .expect("at least one round")
            })
            .collect();
        for (i, server) in servers.iter().enumerate() {
            let mut ratio = median_and_range(&mut ratios[i]);
            if i == 0 && servers.len() > 1 {
                ratio.push_str(&format!(
                    "  {:.2}x the baseline's req/s",
                    totals[0].rate() / totals[1].rate()
                ));
            }
            print_row(&server.label(name), &totals[i], &ratio);
            assert_eq!(
                totals[i].errors, 0,
                "{name} ({}): {} failed requests",
                server.name, totals[i].errors
            );
        }
    }
}

/// Builds the `n`th request of a scenario for a server whose pooled
/// accounts' session tokens are given.
type Scenario = Arc<dyn Fn(&[String], u64) -> Request + Send + Sync>;

/// A server under load: the one measured (in-process or `BENCH_SERVER`), or the baseline.
struct Server {
    name: &'static str,
    addr: std::net::SocketAddr,
    /// A session token for each account of the "existing account" pool.
    tokens: Arc<Vec<String>>,
}

impl Server {
    /// The server at `addr`, with the pool of existing accounts created
    /// when `pool`.
    fn new(
        name: &'static str,
        addr: std::net::SocketAddr,
        client: &tokio::runtime::Runtime,
        pool: bool,
    ) -> Server {
        let mut server = Server {
            name,
            addr,
            tokens: Arc::default(),
        };
        if pool {
            server.log_in_pool(client);
        }
        server
    }

    /// Logs in (creating them the first time) the pool's accounts, keeping
    /// their new session tokens.
    fn log_in_pool(&mut self, client: &tokio::runtime::Runtime) {
        let mut tokens = Vec::new();
        client.block_on(async {
            for i in 0..POOL {
                let (status, answer) = call(self.addr, device_login(&format!("bench-pool-{i}"))).await;
                assert_eq!(
                    status, 200,
                    "logging in the account pool on {} failed: {answer}",
                    self.name
                );
                tokens.push(format!("Bearer {}", answer["token"].as_str().expect("token")));
            }
        });
        self.tokens = Arc::new(tokens);
    }

    /// The scenario's requests, for this server.
    fn requests(&self, scenario: &Scenario) -> impl Fn(u64) -> Request + Clone + Send + 'static {
        let (scenario, tokens) = (scenario.clone(), self.tokens.clone());
        move |n| scenario(&tokens, n)
    }

    /// A row's name: the scenario's, or the baseline's row under it.
    fn label(&self, scenario: &str) -> String {
        if self.name == "server" {
            scenario.to_string()
        } else {
            format!("  {}", self.name)
        }
    }
}

/// The median of `ratios`, with their range when there are several.
fn median_and_range(ratios: &mut [f64]) -> String {
    ratios.sort_by(f64::total_cmp);
    let mid = ratios.len() / 2;
    let median = if ratios.len() % 2 == 1 {
        ratios[mid]
    } else {
        (ratios[mid - 1] + ratios[mid]) / 2.0
    };
    if ratios.len() > 1 {
        format!("{median:.3}x ({:.3}-{:.3})", ratios[0], ratios[ratios.len() - 1])
    } else {
        format!("{median:.3}x")
    }
}

/// The socket address in the environment variable `name`, if set.
fn address_from_env(name: &str) -> Option<std::net::SocketAddr> {
    let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a socket address, e.g. 127.0.0.1:9080, not {value:?}")),
    )
}
