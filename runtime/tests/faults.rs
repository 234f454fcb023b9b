//! Faults, against the real binary over HTTP:
//!
//! - the server process is SIGKILLed during a write load (documents written
//!   through an Element, users signing up) and restarted on the same data:
//!   every acknowledged write is there (embedded SQLite; on MongoDB when
//!   `ELEMENTS_MONGODB_URI` is set);
//! - the MongoDB server (SecantusDB) dies mid-run: API requests answer 503
//!   with a JSON `{code, message}` within a bounded time, the server stays up,
//!   and once MongoDB is back on the same port and storage the same server
//!   works again.
//!
//! The MongoDB tests need SecantusDB: `ELEMENTS_SECANTUSD` (path of
//! `secantusd-py`), else `${ELEMENTS_VENV:-~/.cache/elements/venv}/bin/secantusd-py`
//! (installed by `scripts/mongodb-test-server install`). Without it each test
//! prints that it did not run, or fails if `ELEMENTS_REQUIRE_MONGODB=1`.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Dirs, Server, uuid_like};

/// No single request may take longer than this (a hang is a failure).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// Sends a request; the status and the body as JSON (`Null` if it isn't).
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request failed (no HTTP answer)");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------
// SIGKILL during a write load.
// ---------------------------------------------------------------------------

/// Concurrent clients inserting documents through the Element.
const DOC_CLIENTS: usize = 6;
/// Concurrent clients signing users up.
const SIGNUP_CLIENTS: usize = 2;
/// Caps per client, so the load is bounded even if the kill came late.
const MAX_DOCS_PER_CLIENT: usize = 400;
const MAX_USERS_PER_CLIENT: usize = 20;
/// The kill comes once this much has been acknowledged.
const KILL_AFTER_DOCS: usize = 200;
const KILL_AFTER_USERS: usize = 4;

const LOAD_COLLECTION: &str = "/app/rest/ft/docs/load";
const PASSWORD: &str = "faults-password-1";

#[derive(Default)]
struct Acknowledged {
    /// `(id, the stored document as answered)`.
    docs: Mutex<Vec<(String, Value)>>,
    /// User names whose signup answered 200.
    users: Mutex<Vec<String>>,
    /// Answers that were neither an acknowledgement nor a dropped connection.
    rejected: Mutex<Vec<(u16, Value)>>,
    /// Document clients whose last request got no answer (the kill).
    interrupted_doc_clients: Mutex<usize>,
    interrupted_signup_clients: Mutex<usize>,
}

async fn doc_writer(base: String, client_no: usize, ack: Arc<Acknowledged>, stop: Arc<AtomicBool>) {
    let http = client();
    for seq in 0..MAX_DOCS_PER_CLIENT {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let body = json!({
            "client": client_no,
            "seq": seq,
            "payload": format!("client {client_no} document {seq} {}", "x".repeat(64)),
        });
        let response = match http
            .post(format!("{base}{LOAD_COLLECTION}"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => {
                *ack.interrupted_doc_clients.lock().unwrap() += 1;
                return;
            }
        };
        let status = response.status().as_u16();
        let Ok(text) = response.text().await else {
            // Headers arrived but not the body: not an acknowledgement.
            *ack.interrupted_doc_clients.lock().unwrap() += 1;
            return;
        };
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 201 {
            let id = doc["_id"]
                .as_str()
                .unwrap_or_else(|| panic!("201 without an _id: {doc}"))
                .to_owned();
            assert_eq!(doc["seq"], seq, "{doc}");
            ack.docs.lock().unwrap().push((id, doc));
        } else {
            ack.rejected.lock().unwrap().push((status, doc));
        }
    }
}

async fn signup_writer(base: String, client_no: usize, ack: Arc<Acknowledged>, stop: Arc<AtomicBool>) {
    let http = client();
    let run = uuid_like();
    for seq in 0..MAX_USERS_PER_CLIENT {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let name = format!("load_{client_no}_{seq}_{run}");
        let body = json!({"name": name, "password": PASSWORD});
        let response = match http
            .post(format!("{base}/api/rest/signup/session"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => {
                *ack.interrupted_signup_clients.lock().unwrap() += 1;
                return;
            }
        };
        let status = response.status().as_u16();
        let Ok(text) = response.text().await else {
            *ack.interrupted_signup_clients.lock().unwrap() += 1;
            return;
        };
        let created: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            assert_eq!(created["session"]["user"]["name"], name.as_str(), "{created}");
            ack.users.lock().unwrap().push(name);
        } else {
            ack.rejected.lock().unwrap().push((status, created));
        }
    }
}

/// What the load got acknowledged before the kill.
struct Killed {
    docs: Vec<(String, Value)>,
    users: Vec<String>,
    interrupted_docs: usize,
}

/// Step 1: a write load on a server on `dirs`, SIGKILLed once enough is
/// acknowledged while requests are still in flight. Checks that the kill
/// cut requests off and that only overload turned writes away.
async fn kill_during_write_load(dirs: &Dirs, database: &str) -> Killed {
    let mut server = Server::start_with(dirs, &[], &[], Some(database));
    let base = format!("http://{}", server.addr);
    let backend = if server.log().contains("backend=\"mongodb\"") {
        "MongoDB"
    } else {
        "SQLite"
    };

    let ack = Arc::new(Acknowledged::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for c in 0..DOC_CLIENTS {
        load.spawn(doc_writer(base.clone(), c, ack.clone(), stop.clone()));
    }
    for c in 0..SIGNUP_CLIENTS {
        load.spawn(signup_writer(base.clone(), c, ack.clone(), stop.clone()));
    }

    // Kill once enough is acknowledged, with the load still running.
    let load_started = Instant::now();
    let deadline = load_started + Duration::from_secs(120);
    loop {
        let docs = ack.docs.lock().unwrap().len();
        let users = ack.users.lock().unwrap().len();
        if docs >= KILL_AFTER_DOCS && users >= KILL_AFTER_USERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "step 1 (the load): it acknowledged only {docs} documents and {users} users in 120 s; rejected: {:?}\n{}",
            ack.rejected.lock().unwrap(),
            server.log()
        );
        assert!(
            !load.is_empty() && server.is_running(),
            "step 1 (the load): the load ended or the server died before the kill:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = server.pid();
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let killed_after = load_started.elapsed();
    let joined = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(r) = load.join_next().await {
            r.expect("step 1 (the load): a load client panicked");
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "step 1 (the load): the load clients did not finish within 60 s of the kill"
    );

    let docs = std::mem::take(&mut *ack.docs.lock().unwrap());
    let users = std::mem::take(&mut *ack.users.lock().unwrap());
    let rejected = std::mem::take(&mut *ack.rejected.lock().unwrap());
    let interrupted_docs = *ack.interrupted_doc_clients.lock().unwrap();
    let interrupted_signups = *ack.interrupted_signup_clients.lock().unwrap();
    eprintln!(
        "SIGKILL of pid {pid} ({backend}) after {killed_after:?}: {} documents and {} users acknowledged, \
         {interrupted_docs} document and {interrupted_signups} signup requests cut off, {} rejected",
        docs.len(),
        users.len(),
        rejected.len()
    );
    assert!(
        interrupted_docs + interrupted_signups > 0,
        "step 1 (the kill): no request was in flight at the kill: not a kill during the load"
    );
    // Only overload may turn a write away under this load.
    for (status, body) in &rejected {
        assert_eq!(*status, 503, "step 1 (the load): a write was rejected: {body}");
    }
    Killed {
        docs,
        users,
        interrupted_docs,
    }
}

/// Step 3: every acknowledged document, as it was acknowledged.
async fn acknowledged_documents_are_there_unchanged(base: String, docs: Arc<Vec<(String, Value)>>) {
    let mut checks = tokio::task::JoinSet::new();
    const CHECKERS: usize = 8;
    for k in 0..CHECKERS {
        let (docs, base) = (docs.clone(), base.clone());
        checks.spawn(async move {
            let http = client();
            for (id, acked) in docs.iter().skip(k).step_by(CHECKERS) {
                let (status, stored) = send(http.get(format!("{base}{LOAD_COLLECTION}/{id}"))).await;
                assert_eq!(
                    status, 200,
                    "step 3 (documents): acknowledged document {id} lost after SIGKILL: {stored}"
                );
                assert_eq!(
                    &stored, acked,
                    "step 3 (documents): acknowledged document {id} changed after SIGKILL"
                );
            }
        });
    }
    while let Some(r) = checks.join_next().await {
        r.expect("step 3 (documents): a document check failed");
    }
}

/// Step 4: nothing beyond what was written: at most one unacknowledged
/// insert per cut-off client may have committed.
async fn nothing_beyond_the_cut_off_writes_is_stored(
    base: String,
    acknowledged: usize,
    interrupted_docs: usize,
) {
    let (status, count) = send(
        client()
            .post(format!("{base}{LOAD_COLLECTION}/count"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "step 4 (count): {count}");
    let count = count["count"].as_u64().expect("count") as usize;
    assert!(
        count >= acknowledged && count <= acknowledged + interrupted_docs,
        "step 4 (count): {count} documents stored for {acknowledged} acknowledged and {interrupted_docs} cut off"
    );
    eprintln!("after restart: {count} documents stored for {acknowledged} acknowledged");
}

/// Step 5: every acknowledged user can log in.
async fn acknowledged_users_can_log_in(base: String, users: Vec<String>) {
    let http = client();
    for name in &users {
        let (status, session) = send(
            http.post(format!("{base}/api/rest/session"))
                .json(&json!({"userId": name, "password": PASSWORD})),
        )
        .await;
        assert_eq!(
            status, 200,
            "step 5 (users): acknowledged user {name} cannot log in after SIGKILL: {session}"
        );
        assert_eq!(
            session["session"]["user"]["name"],
            name.as_str(),
            "step 5 (users)"
        );
    }
    eprintln!("after restart: {} users checked", users.len());
}

/// One SIGKILL-and-restart cycle (too costly to repeat per check): the
/// checks after the restart (steps 3 to 5) each run to their end even when
/// another fails, and the failure names every failed step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_write_load_loses_no_acknowledged_write() {
    let dirs = Dirs::new();
    dirs.deploy("ft", "misbehave", "");
    // On MongoDB (ELEMENTS_MONGODB_URI set) the restart must see the same database.
    let database = format!("faults_kill_{}", uuid_like());
    let killed = kill_during_write_load(&dirs, &database).await;

    // Step 2: restart on the same data.
    let restarted_at = Instant::now();
    let server = Server::start_with(&dirs, &[], &[], Some(&database));
    eprintln!("restarted in {:?}", restarted_at.elapsed());
    let base = format!("http://{}", server.addr);

    let acknowledged = killed.docs.len();
    let steps = [
        (
            "step 3: every acknowledged document is there, unchanged",
            tokio::spawn(acknowledged_documents_are_there_unchanged(
                base.clone(),
                Arc::new(killed.docs),
            )),
        ),
        (
            "step 4: nothing beyond the cut-off writes is stored",
            tokio::spawn(nothing_beyond_the_cut_off_writes_is_stored(
                base.clone(),
                acknowledged,
                killed.interrupted_docs,
            )),
        ),
        (
            "step 5: every acknowledged user can log in",
            tokio::spawn(acknowledged_users_can_log_in(base.clone(), killed.users)),
        ),
    ];
    let mut failed = Vec::new();
    for (step, check) in steps {
        if check.await.is_err() {
            failed.push(step);
        }
    }
    assert!(
        failed.is_empty(),
        "after the SIGKILL and restart, these checks failed (their panics are above): {failed:?}"
    );
}

// ---------------------------------------------------------------------------
// MongoDB stopped mid-run.
// ---------------------------------------------------------------------------

fn secantusd() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ELEMENTS_SECANTUSD") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let venv = std::env::var("ELEMENTS_VENV")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache/elements/venv")))
        .ok()?;
    Some(venv.join("bin/secantusd-py")).filter(|p| p.exists())
}

/// A SecantusDB process of this test's own (fsync on every commit, so what
/// it acknowledged survives its SIGKILL), SIGKILLed on drop.
struct Secantus {
    child: Child,
}

impl Secantus {
    fn start(bin: &Path, port: u16, storage: &Path, log: &Path) -> Secantus {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("SecantusDB log file");
        let child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--storage-path",
            ])
            .arg(storage)
            // Without it SecantusDB (like mongod with `j: false`) may lose the
            // writes of the last moments before a SIGKILL, which this test
            // would see as sessions and documents gone after the restart.
            .arg("--sync-on-commit")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("spawn secantusd-py");
        let mut secantus = Secantus { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = secantus.child.try_wait() {
                panic!(
                    "secantusd-py exited with {status} before listening:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "secantusd-py did not listen on {port} within 60 s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        secantus
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Secantus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The calls the test makes before, during and after the outage.
struct Calls {
    base: String,
    http: reqwest::Client,
    /// Session secret of the REST user.
    secret: String,
    /// Nakama session token.
    token: String,
    /// A document written before the outage.
    doc: (String, Value),
}

const DOCS: &str = "/app/rest/ft/docs/notes";

impl Calls {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn login(&self) -> (u16, Value) {
        send(
            self.http
                .post(self.url("/api/rest/session"))
                .json(&json!({"userId": "fault_ana", "password": PASSWORD})),
        )
        .await
    }

    async fn me(&self) -> (u16, Value) {
        send(
            self.http
                .get(self.url("/api/rest/user/me"))
                .bearer_auth(&self.secret),
        )
        .await
    }

    async fn signup(&self, name: &str) -> (u16, Value) {
        send(
            self.http
                .post(self.url("/api/rest/signup/session"))
                .json(&json!({"name": name, "password": PASSWORD})),
        )
        .await
    }

    async fn nakama_account(&self) -> (u16, Value) {
        send(self.http.get(self.url("/v2/account")).bearer_auth(&self.token)).await
    }

    async fn nakama_device(&self, device: &str) -> (u16, Value) {
        send(
            self.http
                .post(self.url("/v2/account/authenticate/device"))
                .basic_auth("defaultkey", Some(""))
                .json(&json!({"id": device})),
        )
        .await
    }

    async fn insert(&self, body: Value) -> (u16, Value) {
        send(self.http.post(self.url(DOCS)).json(&body)).await
    }

    async fn get_doc(&self) -> (u16, Value) {
        send(self.http.get(self.url(&format!("{DOCS}/{}", self.doc.0)))).await
    }

    async fn health(&self) -> (u16, Value) {
        send(self.http.get(self.url("/health"))).await
    }
}

/// Every call during the outage, concurrently: `(name, status, body, time)`.
async fn outage_round(calls: &Calls, round: usize) -> Vec<(&'static str, u16, Value, Duration)> {
    async fn timed(
        name: &'static str,
        f: impl std::future::Future<Output = (u16, Value)>,
    ) -> (&'static str, u16, Value, Duration) {
        let t = Instant::now();
        let (status, body) = f.await;
        (name, status, body, t.elapsed())
    }
    let (user, device) = (
        format!("fault_outage_{round}"),
        format!("fault-device-outage-{round}"),
    );
    let (a, b, c, d, e, f, g) = tokio::join!(
        timed("POST /api/rest/session", calls.login()),
        timed("GET /api/rest/user/me", calls.me()),
        timed("POST /api/rest/signup/session", calls.signup(&user)),
        timed("GET /v2/account", calls.nakama_account()),
        timed(
            "POST /v2/account/authenticate/device",
            calls.nakama_device(&device)
        ),
        timed("POST (Element) docs", calls.insert(json!({"during": "outage"}))),
        timed("GET (Element) docs/{id}", calls.get_doc()),
    );
    vec![a, b, c, d, e, f, g]
}

/// Checks one outage answer: 503 with a clear JSON `{code, message}`.
fn assert_unavailable(name: &str, status: u16, body: &Value) {
    assert_eq!(status, 503, "{name} during the MongoDB outage: {body}");
    // The core APIs' own wording; an Element passes the store's on
    // ("MongoDB is unreachable: ...").
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unavailable") || message.contains("unreachable"),
        "{name}: the 503 body has no clear message: {body}"
    );
    if name.starts_with("GET /v2") || name.starts_with("POST /v2") {
        // Nakama's gateway: gRPC UNAVAILABLE.
        assert_eq!(body["code"], 14, "{name}: {body}");
    } else if name.contains("(Element)") {
        // The guest SDK's mapping of the store's `unavailable`.
        assert_eq!(body["code"], "UNAVAILABLE", "{name}: {body}");
    } else {
        assert_eq!(body["code"], "UNAVAILABLE", "{name}: {body}");
    }
}

/// A server on a SecantusDB of its own, with a REST user, a Nakama device
/// account and a document written, and every call checked to work while
/// MongoDB is up.
struct MongoUp {
    bin: PathBuf,
    port: u16,
    storage: PathBuf,
    mongo_log: PathBuf,
    mongo: Secantus,
    server: Server,
    calls: Calls,
    _dirs: Dirs,
    _work: tempfile::TempDir,
}

/// [`MongoUp`], or `None` (the test did not run) without SecantusDB.
async fn mongodb_up(test: &str) -> Option<MongoUp> {
    let Some(bin) = secantusd() else {
        if std::env::var("ELEMENTS_REQUIRE_MONGODB").is_ok_and(|v| v == "1") {
            panic!("ELEMENTS_REQUIRE_MONGODB=1 but secantusd-py was not found");
        }
        // Straight to stderr: libtest captures `eprintln!` of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: {test}: secantusd-py not found \
             (set ELEMENTS_SECANTUSD or run `scripts/mongodb-test-server install`)"
        );
        return None;
    };
    let work = tempfile::tempdir().expect("temp dir");
    let storage = work.path().join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let mongo_log = work.path().join("secantusd.log");
    let port = support::closed_port();
    let mongo = Secantus::start(&bin, port, &storage, &mongo_log);

    let dirs = Dirs::new();
    dirs.deploy("ft", "misbehave", "");
    let database = format!("faults_outage_{}", uuid_like());
    let uri = format!("mongodb://127.0.0.1:{port}/?directConnection=true");
    let server = Server::start_with(
        &dirs,
        &["--mongodb-uri", &uri],
        &[("ELEMENTS_MONGODB_DATABASE", &database)],
        Some(&database),
    );
    let http = client();
    let base = format!("http://{}", server.addr);

    // Everything works while MongoDB is up.
    let (status, created) = send(
        http.post(format!("{base}/api/rest/signup/session"))
            .json(&json!({"name": "fault_ana", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "before the outage: {created}");
    let secret = created["sessionSecret"].as_str().expect("secret").to_owned();
    let (status, device) = send(
        http.post(format!("{base}/v2/account/authenticate/device"))
            .basic_auth("defaultkey", Some(""))
            .json(&json!({"id": "fault-device-0001"})),
    )
    .await;
    assert_eq!(status, 200, "before the outage: {device}");
    let token = device["token"].as_str().expect("token").to_owned();
    let (status, doc) = send(
        http.post(format!("{base}{DOCS}"))
            .json(&json!({"before": "outage"})),
    )
    .await;
    assert_eq!(status, 201, "before the outage: {doc}");
    let calls = Calls {
        base,
        http,
        secret,
        token,
        doc: (doc["_id"].as_str().expect("_id").to_owned(), doc),
    };
    let (status, body) = calls.login().await;
    assert_eq!(status, 200, "before the outage: {body}");
    let (status, me) = calls.me().await;
    assert_eq!(
        (status, &me["name"]),
        (200, &json!("fault_ana")),
        "before the outage: {me}"
    );
    let (status, body) = calls.nakama_account().await;
    assert_eq!(status, 200, "before the outage: {body}");
    let (status, got) = calls.get_doc().await;
    assert_eq!((status, &got), (200, &calls.doc.1), "before the outage");
    Some(MongoUp {
        bin,
        port,
        storage,
        mongo_log,
        mongo,
        server,
        calls,
        _dirs: dirs,
        _work: work,
    })
}

/// One round of every call while MongoDB is down: each answers 503 with a
/// clear body, within 20 s.
async fn every_call_is_unavailable(calls: &Calls, round: usize) {
    let round_started = Instant::now();
    let answers = outage_round(calls, round).await;
    for (name, status, body, took) in &answers {
        eprintln!("outage round {round}: {name} -> {status} after {took:?}: {body}");
    }
    for (name, status, body, took) in &answers {
        assert_unavailable(name, *status, body);
        assert!(
            *took < Duration::from_secs(20),
            "{name} took {took:?} to fail during the outage"
        );
    }
    eprintln!(
        "outage round {round}: all 503 within {:?}",
        round_started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_mongodb_is_down_every_call_answers_503_quickly_and_the_server_stays_up() {
    let Some(mut up) =
        mongodb_up("while_mongodb_is_down_every_call_answers_503_quickly_and_the_server_stays_up").await
    else {
        return;
    };
    up.mongo.kill();
    let (status, health) = up.calls.health().await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");

    for round in 0..2 {
        every_call_is_unavailable(&up.calls, round).await;
        let t = Instant::now();
        let (status, _) = up.calls.health().await;
        assert_eq!(status, 200, "/health during the outage");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "/health is slow during the outage"
        );
        assert!(
            up.server.is_running(),
            "the server died during the outage:\n{}",
            up.server.log()
        );
    }
}

/// MongoDB back on the same port and storage after an outage the server
/// saw: the same server works again, with what was written before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_mongodb_returns_the_same_server_works_again_with_its_data() {
    let Some(mut up) = mongodb_up("when_mongodb_returns_the_same_server_works_again_with_its_data").await
    else {
        return;
    };
    up.mongo.kill();
    let outage_started = Instant::now();
    every_call_is_unavailable(&up.calls, 0).await;

    let outage = outage_started.elapsed();
    up.mongo = Secantus::start(&up.bin, up.port, &up.storage, &up.mongo_log);
    let back = Instant::now();
    let deadline = back + Duration::from_secs(60);
    let calls = &up.calls;
    loop {
        let (status, body) = calls.me().await;
        if status == 200 {
            break;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "did not recover within 60 s of MongoDB's return: {status} {body}\n{}",
            up.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "outage lasted {outage:?}; requests work again {:?} after MongoDB's return",
        back.elapsed()
    );
    let (status, body) = calls.login().await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = calls.signup("fault_after").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = calls.nakama_account().await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = calls.nakama_device("fault-device-after").await;
    assert_eq!(status, 200, "{body}");
    let (status, got) = calls.get_doc().await;
    assert_eq!(
        (status, &got),
        (200, &calls.doc.1),
        "the document written before the outage"
    );
    let (status, body) = calls.insert(json!({"after": "outage"})).await;
    assert_eq!(status, 201, "{body}");
    assert!(up.server.is_running());
    let MongoUp {
        server, mut mongo, ..
    } = up;
    drop(server);
    mongo.kill();
}
