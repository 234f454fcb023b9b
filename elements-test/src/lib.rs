//! Test an Element in a plain `cargo test`, against the real runtime.
//!
//! The crate is called `elements-test` and its one type [`Harness`]: a
//! *harness* is what a test runs the thing under test in, and that is all
//! this is — the runtime the `elements` binary runs (its composition root,
//! `elements_runtime::Runtime::start_with`, the same deploy checks, the same
//! `/app/rest/<prefix>/...` routes over loopback HTTP), started in-process
//! around one Element, with everything outside it made local:
//!
//! * a temporary SQLite store (a new one per harness);
//! * mail: an SMTP server on loopback inside the test process records every
//!   message the Element sends ([`Harness::mails`]);
//! * events published on the server's bus ([`Harness::events`]) and the
//!   Element's log ([`Harness::logs`]);
//! * outbound HTTP answered from canned responses the test registers per
//!   URL ([`Setup::stub`]), never the network; the Element's
//!   `http.outbound:` grants still apply first;
//! * attributes ([`Setup::attribute`]) and grants ([`Setup::grants`]; by
//!   default every grant the manifest requests is approved);
//! * users: [`Harness::signup`] makes an account through `/api/rest` and
//!   [`Request::session`] sends its session with a request.
//!
//! Add it as a dev-dependency of the Element crate and write ordinary
//! `#[test]`s (the API blocks, so no async runtime is needed):
//!
//! ```toml
//! [dev-dependencies]
//! elements-test = { path = "../../elements-test" }
//! serde_json = "1"
//! ```
//!
//! `tests/scores.rs`, the body of a `#[test] fn`:
//!
//! ```no_run
//! use elements_test::Harness;
//! use serde_json::json;
//!
//! // Builds this crate for wasm32-wasip2 and deploys it with its element.toml.
//! let harness = Harness::build(env!("CARGO_MANIFEST_DIR")).start();
//! let ada = harness.signup("ada");
//! let posted = harness
//!     .post("/scores")
//!     .session(&ada)
//!     .json(&json!({"player": "ada", "score": 10}))
//!     .send();
//! assert_eq!(posted.status(), 200, "{}", posted.text());
//! assert_eq!(harness.get("/top").send().json()[0]["player"], "ada");
//! ```
//!
//! Failures to set up (the build fails, the deploy is refused) panic with the
//! reason: they are the test's failure.

mod smtp;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use elements_config::Config;
use elements_config::grants::Grant;
use elements_host::element::manifest::Manifest;
use elements_host::services::http::OutboundStub;
use elements_runtime::{Embedding, Runtime};
use serde_json::Value;

pub use elements_host::log_buffer::{Level, LogLine, Source};
pub use elements_host::services::http::StubResponse;
pub use smtp::Mail;

/// The password of the superuser `root` in every harness ([`Harness::root`]).
pub const ROOT_PASSWORD: &str = "elements-test-root";

/// How long [`Harness::wait_for_mail`] and [`Harness::wait_for_event`] wait.
const WAIT: Duration = Duration::from_secs(10);

/// An Element to start: its component, manifest and what the test sets
/// around it. Made by [`Harness::build`] or [`Harness::wasm`]; [`Setup::start`]
/// starts the runtime.
#[must_use = "call .start() to run the Element"]
pub struct Setup {
    name: String,
    component: PathBuf,
    manifest: Option<String>,
    attributes: BTreeMap<String, String>,
    grants: Option<Vec<String>>,
    stubs: HashMap<(String, String), StubResponse>,
}

impl Harness {
    /// Builds the Element crate in `crate_dir` (`cargo build --release
    /// --target wasm32-wasip2`) and sets it up with its `element.toml`, named
    /// after the folder (as `cargo xtask elements` deploys it). Each crate is
    /// built once per test binary.
    ///
    /// ```no_run
    /// let harness = elements_test::Harness::build(env!("CARGO_MANIFEST_DIR")).start();
    /// ```
    pub fn build(crate_dir: impl AsRef<Path>) -> Setup {
        let dir = crate_dir.as_ref();
        let component = built_component(dir);
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("{} has no folder name", dir.display()))
            .to_owned();
        let manifest = std::fs::read_to_string(dir.join("element.toml")).ok();
        Setup::new(name, component, manifest)
    }

    /// Sets up an already built component, named after the file (`NAME.wasm`),
    /// with the manifest beside it (`NAME.toml`) when there is one.
    ///
    /// ```no_run
    /// let harness = elements_test::Harness::wasm("deploy/hello.wasm")
    ///     .manifest("prefix = \"hi\"")
    ///     .start();
    /// ```
    pub fn wasm(path: impl AsRef<Path>) -> Setup {
        let path = path.as_ref();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("{} has no file name", path.display()))
            .to_owned();
        let manifest = std::fs::read_to_string(path.with_extension("toml")).ok();
        Setup::new(name, path.to_owned(), manifest)
    }
}

impl Setup {
    fn new(name: String, component: PathBuf, manifest: Option<String>) -> Setup {
        Setup {
            name,
            component,
            manifest,
            attributes: BTreeMap::new(),
            grants: None,
            stubs: HashMap::new(),
        }
    }

    /// Deploys under another name (the manifest's `prefix`, else the name,
    /// is where it is mounted).
    pub fn name(mut self, name: &str) -> Setup {
        self.name = name.to_owned();
        self
    }

    /// Uses this manifest text instead of the Element's `element.toml`.
    pub fn manifest(mut self, toml: &str) -> Setup {
        self.manifest = Some(toml.to_owned());
        self
    }

    /// Sets an attribute as the operator would for this Element, over the
    /// manifest's default (the deploy checks its type and range).
    ///
    /// ```no_run
    /// let harness = elements_test::Harness::build(env!("CARGO_MANIFEST_DIR"))
    ///     .attribute("greeting", "Hi")
    ///     .start();
    /// ```
    pub fn attribute(mut self, name: &str, value: &str) -> Setup {
        self.attributes.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Approves exactly these grants (by default: every grant the manifest
    /// requests), e.g. none, to see a deploy refused or a call forbidden.
    ///
    /// ```no_run
    /// // The manifest asks for mail.send; an operator who has not approved it:
    /// let refused = std::panic::catch_unwind(|| {
    ///     elements_test::Harness::build(env!("CARGO_MANIFEST_DIR")).grants(&[]).start()
    /// });
    /// assert!(refused.is_err());
    /// ```
    pub fn grants(mut self, grants: &[&str]) -> Setup {
        self.grants = Some(grants.iter().map(|g| (*g).to_owned()).collect());
        self
    }

    /// Answers `method url` (the full URL the Element requests, query
    /// included) with `status` and `body` instead of the network. A request
    /// to a URL without a stub fails as a connection failure would.
    ///
    /// ```no_run
    /// let harness = elements_test::Harness::build(env!("CARGO_MANIFEST_DIR"))
    ///     .stub("GET", "https://users.roblox.com/v1/users/1", 200, r#"{"id": 1, "name": "a"}"#)
    ///     .start();
    /// ```
    pub fn stub(self, method: &str, url: &str, status: u16, body: &str) -> Setup {
        self.stub_response(
            method,
            url,
            StubResponse {
                status,
                headers: vec![("content-type".into(), content_type(body).into())],
                body: body.as_bytes().to_vec(),
            },
        )
    }

    /// [`Setup::stub`] with headers of its own.
    pub fn stub_response(mut self, method: &str, url: &str, response: StubResponse) -> Setup {
        self.stubs
            .insert((method.to_ascii_uppercase(), url.to_owned()), response);
        self
    }

    /// Starts the runtime with the Element deployed, or panics with why the
    /// deploy failed.
    pub fn start(self) -> Harness {
        Harness::start(self)
    }
}

fn content_type(body: &str) -> &'static str {
    if serde_json::from_str::<Value>(body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// The stubs, as the host's outbound hook.
struct Stubs(HashMap<(String, String), StubResponse>);

impl OutboundStub for Stubs {
    fn answer(&self, method: &str, url: &str) -> Option<StubResponse> {
        self.0
            .get(&(method.to_ascii_uppercase(), url.to_owned()))
            .cloned()
    }
}

/// The runtime serving one Element, on loopback, until dropped.
pub struct Harness {
    name: String,
    prefix: String,
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    runtime: Option<Runtime>,
    mail: Arc<smtp::Sink>,
    events: Arc<Mutex<Vec<Event>>>,
    // Dropped before `_dir`: the server's tasks go before its folders.
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

/// An event published on the server's bus while the harness ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its name, e.g. `leaderboard.score_posted`.
    pub name: String,
    /// Its payload.
    pub payload: Value,
}

impl Harness {
    fn start(setup: Setup) -> Harness {
        let dir = tempfile::tempdir().expect("creating a temporary folder for the runtime");
        let mut config = Config::in_dir(dir.path());
        config.listen = "127.0.0.1:0".parse().expect("a loopback address");
        config.admin_listen = config.listen;
        config.cache_dir = shared_cache();
        config.identity.root_password = Some(elements_identity::Secret::new(ROOT_PASSWORD));
        let deploy = &config.deploy_dir;
        std::fs::create_dir_all(deploy).expect("creating the deploy folder");
        std::fs::copy(&setup.component, deploy.join(format!("{}.wasm", setup.name)))
            .unwrap_or_else(|e| panic!("reading the component {}: {e}", setup.component.display()));
        if let Some(manifest) = &setup.manifest {
            std::fs::write(deploy.join(format!("{}.toml", setup.name)), manifest)
                .expect("writing the manifest");
        }
        let grants: BTreeSet<Grant> = match &setup.grants {
            Some(list) => list
                .iter()
                .map(|g| g.parse().unwrap_or_else(|e| panic!("grant {g:?}: {e}")))
                .collect(),
            // An invalid manifest is the deploy's to report.
            None => setup
                .manifest
                .as_deref()
                .and_then(|m| Manifest::parse(m).ok())
                .map(|m| m.requested_grants(&setup.name))
                .unwrap_or_default(),
        };
        config.element_grants.insert(setup.name.clone(), grants);
        if !setup.attributes.is_empty() {
            config
                .element_attributes
                .insert(setup.name.clone(), setup.attributes.clone());
        }

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("starting a tokio runtime");
        let mail = rt.block_on(smtp::Sink::start()).expect("starting the SMTP sink");
        config.services.mail.host = Some("127.0.0.1".into());
        config.services.mail.port = mail.port();
        config.services.mail.starttls = false;
        config.services.mail.from = Some("elements-test@localhost".into());

        let listener = rt
            .block_on(tokio::net::TcpListener::bind(config.listen))
            .expect("listening on loopback");
        let addr = listener.local_addr().expect("the listener's address");
        config.listen = addr;
        config.public_url = Some(format!("http://{addr}"));
        let embedding = Embedding {
            outbound_stub: Some(Arc::new(Stubs(setup.stubs))),
        };
        let runtime = rt
            .block_on(Runtime::start_with(&config, embedding))
            .unwrap_or_else(|e| panic!("starting the runtime: {e:#}"));
        let app = runtime.app.clone();
        let status = app.deployer.status(&setup.name);
        let element = match status.as_ref().and_then(|s| s.element.clone()) {
            Some(element) => element,
            None => {
                let why = status
                    .and_then(|s| s.failure)
                    .map(|f| f.error)
                    .unwrap_or_else(|| "it was not deployed".into());
                panic!("deploying {}: {why}", setup.name);
            }
        };

        let events = Arc::new(Mutex::new(Vec::new()));
        let mut bus = runtime.events.subscribe();
        let seen = events.clone();
        rt.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match bus.recv().await {
                    Ok(event) => seen.lock().unwrap_or_else(|e| e.into_inner()).push(Event {
                        name: event.name,
                        payload: event.payload,
                    }),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        let router = runtime.public_service();
        let limits = config.connections.clone();
        rt.spawn(async move {
            let _ = elements_runtime::serve(listener, router, &limits, std::future::pending()).await;
        });
        Harness {
            name: setup.name,
            prefix: element.prefix.clone(),
            addr,
            client: reqwest::Client::new(),
            runtime: Some(runtime),
            mail,
            events,
            rt: Some(rt),
            _dir: dir,
        }
    }

    /// The Element's deployed name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` below the Element's mount point
    /// (`/app/rest/<prefix><path>`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/app/rest/{}{path}", self.addr, self.prefix)
    }

    /// A `GET` of `path` below the Element's mount point.
    ///
    /// ```no_run
    /// # let harness = elements_test::Harness::build(".").start();
    /// let res = harness.get("/hello").send();
    /// assert_eq!(res.status(), 200);
    /// ```
    pub fn get(&self, path: &str) -> Request<'_> {
        self.request("GET", path)
    }

    /// A `POST` of `path` below the Element's mount point.
    pub fn post(&self, path: &str) -> Request<'_> {
        self.request("POST", path)
    }

    /// A `PUT` of `path` below the Element's mount point.
    pub fn put(&self, path: &str) -> Request<'_> {
        self.request("PUT", path)
    }

    /// A `DELETE` of `path` below the Element's mount point.
    pub fn delete(&self, path: &str) -> Request<'_> {
        self.request("DELETE", path)
    }

    /// A request of `path` below the Element's mount point.
    pub fn request(&self, method: &str, path: &str) -> Request<'_> {
        self.request_url(method, self.url(path))
    }

    /// A request of any path on the server, e.g. a core route the Element
    /// serves (`/api/rest/verify?token=...`) or the core API itself.
    pub fn server_request(&self, method: &str, path: &str) -> Request<'_> {
        self.request_url(method, format!("http://{}{path}", self.addr))
    }

    fn request_url(&self, method: &str, url: String) -> Request<'_> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|e| panic!("method {method:?}: {e}"));
        Request {
            harness: self,
            builder: self.client.request(method, url),
        }
    }

    /// Makes an account (`POST /api/rest/signup/session`, password
    /// `password-of-NAME`) and returns it with its session.
    ///
    /// ```no_run
    /// # let harness = elements_test::Harness::build(".").start();
    /// let ada = harness.signup("ada");
    /// let me = harness.get("/me").session(&ada).send();
    /// ```
    pub fn signup(&self, name: &str) -> User {
        self.signup_with(serde_json::json!({
            "name": name,
            "password": format!("password-of-{name}"),
        }))
    }

    /// [`Harness::signup`] with an email address linked to the account.
    pub fn signup_with_email(&self, name: &str, email: &str) -> User {
        self.signup_with(serde_json::json!({
            "name": name,
            "email": email,
            "password": format!("password-of-{name}"),
        }))
    }

    fn signup_with(&self, body: Value) -> User {
        let res = self
            .server_request("POST", "/api/rest/signup/session")
            .json(&body)
            .send();
        assert_eq!(res.status(), 200, "signing up {body}: {}", res.text());
        let created = res.json();
        User {
            id: created["session"]["user"]["id"]
                .as_str()
                .or_else(|| created["user"]["id"].as_str())
                .unwrap_or_default()
                .to_owned(),
            name: body["name"].as_str().unwrap_or_default().to_owned(),
            secret: created["sessionSecret"]
                .as_str()
                .unwrap_or_else(|| panic!("no session secret in {created}"))
                .to_owned(),
            created,
        }
    }

    /// A session for `name`: signs the account up on first use, else logs in
    /// with the password [`Harness::signup`] gave it.
    pub fn session_for(&self, name: &str) -> User {
        self.login(name, &format!("password-of-{name}"))
            .unwrap_or_else(|| self.signup(name))
    }

    /// A session of the superuser `root` (password [`ROOT_PASSWORD`]), e.g.
    /// to create an application through `/api/rest/application`.
    ///
    /// ```no_run
    /// # let harness = elements_test::Harness::build(".").start();
    /// let root = harness.root();
    /// let created = harness
    ///     .server_request("POST", "/api/rest/application")
    ///     .session(&root)
    ///     .json(&serde_json::json!({"name": "my_game"}))
    ///     .send();
    /// assert_eq!(created.status(), 200);
    /// ```
    pub fn root(&self) -> User {
        self.login("root", ROOT_PASSWORD)
            .expect("logging in as root with ROOT_PASSWORD")
    }

    fn login(&self, name: &str, password: &str) -> Option<User> {
        let login = self
            .server_request("POST", "/api/rest/session")
            .json(&serde_json::json!({"userId": name, "password": password}))
            .send();
        if login.status() != 200 {
            return None;
        }
        let created = login.json();
        Some(User {
            id: created["session"]["user"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name: name.to_owned(),
            secret: created["sessionSecret"].as_str().unwrap_or_default().to_owned(),
            created,
        })
    }

    /// Creates an application (as `root`); returns it as `/api/rest` does.
    pub fn create_application(&self, name: &str) -> Value {
        let root = self.root();
        let res = self
            .server_request("POST", "/api/rest/application")
            .session(&root)
            .json(&serde_json::json!({"name": name}))
            .send();
        assert!(
            res.status() == 200 || res.status() == 201,
            "creating application {name}: {} {}",
            res.status(),
            res.text()
        );
        res.json()
    }
    /// Every message the Element sent so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        self.mail.messages()
    }

    /// Waits (up to 10 s) until at least `count` messages were sent; returns them all.
    pub fn wait_for_mail(&self, count: usize) -> Vec<Mail> {
        let started = Instant::now();
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                started.elapsed() < WAIT,
                "{count} mail(s) expected, got {mails:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every event published on the server's bus since the harness started
    /// (the runtime's own, e.g. `dev.getelements.element.loaded`, too).
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (up to 10 s) for an event named `name`; returns the first.
    pub fn wait_for_event(&self, name: &str) -> Event {
        let started = Instant::now();
        loop {
            if let Some(event) = self.events().into_iter().find(|e| e.name == name) {
                return event;
            }
            assert!(
                started.elapsed() < WAIT,
                "no event {name}; got {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The Element's log as operators read it (its `log` calls, stdout,
    /// stderr and the host's lines about it), oldest first.
    pub fn logs(&self) -> Vec<LogLine> {
        match &self.runtime {
            Some(runtime) => runtime.app.deployer.log(&self.name).recent(usize::MAX),
            None => Vec::new(),
        }
    }

    /// Whether a log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs().iter().any(|l| l.message.contains(text))
    }

    /// The runtime's shared state (store, identity, deployer), for what the
    /// helpers here don't cover.
    pub fn app(&self) -> Arc<elements_server::App> {
        self.runtime
            .as_ref()
            .map(|r| r.app.clone())
            .expect("the runtime runs until the harness is dropped")
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt
            .as_ref()
            .expect("the runtime runs until the harness is dropped")
            .block_on(future)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The services before the executor that runs their tasks, inside
        // it, as they were made.
        if let Some(rt) = self.rt.take() {
            {
                let _inside = rt.enter();
                drop(self.runtime.take());
            }
            rt.shutdown_background();
        }
    }
}

/// An account made by [`Harness::signup`] or [`Harness::session_for`].
#[derive(Debug, Clone)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The user's name.
    pub name: String,
    /// The session secret (`Authorization: Bearer <secret>`).
    pub secret: String,
    /// The whole answer of the signup or login.
    pub created: Value,
}

/// A request being built; [`Request::send`] sends it.
#[must_use = "call .send() to send the request"]
pub struct Request<'h> {
    harness: &'h Harness,
    builder: reqwest::RequestBuilder,
}

impl Request<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sends as `user` (`Authorization: Bearer <session secret>`).
    pub fn session(self, user: &User) -> Self {
        let value = format!("Bearer {}", user.secret);
        self.header("authorization", &value)
    }

    /// A JSON body.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.builder = self.builder.body(body.into());
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Response {
        let harness = self.harness;
        harness.block_on(async move {
            let res = self
                .builder
                .send()
                .await
                .expect("sending the request to the runtime");
            let status = res.status().as_u16();
            let headers = res
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = res.bytes().await.expect("reading the response").to_vec();
            Response {
                status,
                headers,
                body,
            }
        })
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (failing the test) when it isn't.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.text()))
    }
}

/// The target folder of the running test binary (`target/debug/deps/..`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_owned))
        .filter(|dir| dir.join("debug").is_dir() || dir.join("release").is_dir())
        .unwrap_or_else(|| std::env::temp_dir().join("elements-test-target"))
}

/// Compiled Elements, shared by every harness (the cache is keyed by the
/// component's hash and safe for concurrent servers).
fn shared_cache() -> PathBuf {
    target_dir().join("tmp").join("elements-test-cache")
}

/// Builds the crate in `dir` for wasm32-wasip2 once per process; the path
/// of its component.
fn built_component(dir: &Path) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let dir = dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("the Element crate {}: {e}", dir.display()));
    let built = BUILT.get_or_init(Default::default);
    // Held across the build: two tests of one binary build it once.
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(&dir) {
        return path.clone();
    }
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("reading {}/Cargo.toml: {e}", dir.display()));
    let package: toml::Table =
        toml::from_str(&cargo_toml).unwrap_or_else(|e| panic!("parsing {}/Cargo.toml: {e}", dir.display()));
    let name = package
        .get("lib")
        .and_then(|l| l.get("name"))
        .or_else(|| package.get("package").and_then(|p| p.get("name")))
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{}/Cargo.toml names no package", dir.display()))
        .replace('-', "_");
    // A target folder of its own: the one running this test may be locked
    // by the cargo that runs it. `guests` is where `cargo xtask` and the
    // runtime's tests build Elements, so they share the work.
    let guests = target_dir().join("guests");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&dir)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&guests)
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build {}: {e}", dir.display()));
    assert!(
        status.success(),
        "building {} for wasm32-wasip2 failed (is the target installed? rustup target add wasm32-wasip2)",
        dir.display()
    );
    let path = guests
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{name}.wasm"));
    assert!(path.is_file(), "the build wrote no {}", path.display());
    built.insert(dir, path.clone());
    path
}
