//! Browser tests: a headless Debian `chromium` driven over WebDriver by
//! `chromedriver`, with helpers that find things the way a person does (by
//! label, button and link text) and screenshots numbered in the order taken.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages
//! `chromium` and `chromium-driver`; `cargo xtask test` installs them).

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::{Element, ElementRef};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long [`Browser::start`] waits for chromedriver to say it is ready.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the `wait_for_*` helpers look again.
const POLL: Duration = Duration::from_millis(100);

/// The key WebDriver wraps an element reference in when a script returns it.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Shared by the finders below: whitespace-normalized text, visibility, and
/// a label's own text (without the text of a control nested in it, such as a
/// select's options).
const JS_PRELUDE: &str = r#"
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
const labelText = label => {
    const copy = label.cloneNode(true);
    copy.querySelectorAll('input, select, textarea, button').forEach(c => c.remove());
    return norm(copy.textContent);
};
const scopeOf = css => {
    if (!css) return document;
    const scope = document.querySelector(css);
    if (!scope) throw new Error('no element matches the scope selector ' + css);
    return scope;
};
"#;

/// A headless chromium session, with its chromedriver. Dropping it ends the
/// session and kills chromedriver's whole process group, chromium included.
pub struct Browser {
    /// The WebDriver client, for anything the helpers don't cover.
    pub client: Client,
    driver: Driver,
    session_id: Option<String>,
    screenshots: PathBuf,
    taken: usize,
    // Holds chromium's profile and chromedriver's log; removed on drop.
    scratch: tempfile::TempDir,
}

impl std::ops::Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// Starts chromedriver and a headless chromium session. Screenshots go to
    /// a folder named after the current test (libtest names each test's
    /// thread after it).
    pub async fn start() -> Browser {
        let name = std::thread::current()
            .name()
            .filter(|n| *n != "main")
            .unwrap_or("browser")
            .to_owned();
        Browser::start_named(&name).await
    }

    /// [`Browser::start`] with screenshots under `portal-screenshots/<name>/`.
    pub async fn start_named(name: &str) -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: browser tests need Debian's {package}. Run \
                 `sudo apt-get install chromium chromium-driver` (`cargo xtask test` does it for you)"
            );
        }
        let scratch = tempfile::tempdir().expect("creating a temp dir for chromium");
        let log_path = scratch.path().join("chromedriver.log");
        let profile = scratch.path().join("profile");
        // Each failure below is one the machine can cause, not the code under
        // test: a port taken between our probe and chromedriver's bind, or a
        // chromium that dies while starting on a loaded machine. Start over
        // with a new driver a few times, saying why, before giving up.
        let mut attempt = 0;
        let (driver, client) = loop {
            attempt += 1;
            match start_session(&log_path, &profile).await {
                Ok(started) => break started,
                Err(why) if attempt < 3 => eprintln!(
                    "{why}; retrying with a new chromedriver. Its log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ),
                Err(why) => panic!(
                    "{why}\nchromedriver log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ),
            }
        };
        let session_id = client.session_id().await.ok().flatten();
        Browser {
            client,
            driver,
            session_id,
            screenshots: screenshot_dir(name),
            taken: 0,
            scratch,
        }
    }

    /// The folder this browser's screenshots go to.
    pub fn screenshot_dir(&self) -> &Path {
        &self.screenshots
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(String::from)
            .unwrap_or_else(|e| panic!("reading the current URL: {e}"))
    }

    /// Types `value` into the field labelled `label` (the `<label>`'s own text,
    /// whitespace-collapsed and trimmed, matched exactly), clearing it first.
    /// A `<select>` gets the option whose text is `value` instead.
    pub async fn fill(&self, label: &str, value: &str) {
        self.fill_within(None, label, value).await
    }

    /// [`Browser::fill`], only looking inside the first element matching
    /// `scope` (a CSS selector), for pages with several forms.
    pub async fn fill_within(&self, scope: Option<&str>, label: &str, value: &str) {
        let field = self.labelled(scope, label).await;
        if self.tag(&field).await == "select" {
            return self.choose_option(&field, label, value).await;
        }
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clearing the field {label:?}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("typing into the field {label:?}: {e}"));
    }

    /// Picks the option with text `option` in the `<select>` labelled `label`.
    pub async fn select(&self, label: &str, option: &str) {
        let field = self.labelled(None, label).await;
        let tag = self.tag(&field).await;
        assert_eq!(
            tag, "select",
            "the field labelled {label:?} is a <{tag}>, not a <select>"
        );
        self.choose_option(&field, label, option).await
    }

    /// Clicks the one visible `<button>` or submit/button `<input>` whose
    /// visible text (or, for icon buttons, `aria-label`) is `text`.
    pub async fn click_button(&self, text: &str) {
        self.click_button_within(None, text).await
    }

    /// [`Browser::click_button`] inside the first element matching `scope`,
    /// for pages with a button of the same text in each row.
    pub async fn click_button_within(&self, scope: Option<&str>, text: &str) {
        const CANDIDATES: &str =
            "button, input[type=submit], input[type=button], input[type=reset], input[type=image]";
        self.click_by_text(scope, CANDIDATES, "button", text).await
    }

    /// Clicks the one visible link whose visible text (or `aria-label`) is `text`.
    pub async fn click_link(&self, text: &str) {
        self.click_link_within(None, text).await
    }

    /// [`Browser::click_link`] inside the first element matching `scope`.
    pub async fn click_link_within(&self, scope: Option<&str>, text: &str) {
        self.click_by_text(scope, "a[href]", "link", text).await
    }

    /// The visible text of the first element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.find_css(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading the text of {css:?}: {e}"))
    }

    /// The first element matching `css`; fails if there is none.
    pub async fn find_css(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!(
                "no element matches {css:?} ({e}) on {}; the page shows:\n{}",
                self.url().await,
                self.body_text().await
            ),
        }
    }

    /// Waits until an element matches `css`, failing (with a screenshot)
    /// after `timeout`.
    pub async fn wait_for_css(&mut self, css: &str, timeout: Duration) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if started.elapsed() > timeout {
                self.fail_waiting(&format!("an element matching {css:?}"), timeout)
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The page's visible text.
    pub async fn body_text(&self) -> String {
        let body = self
            .client
            .find(Locator::Css("body"))
            .await
            .unwrap_or_else(|e| panic!("finding <body>: {e}"));
        body.text()
            .await
            .unwrap_or_else(|e| panic!("reading the page text: {e}"))
    }

    /// Waits until the page's visible text contains `text`; after `timeout`
    /// fails with the text it has and a screenshot.
    pub async fn wait_for_text(&mut self, text: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            // Mid-navigation the body can be gone: that is "not yet".
            if let Ok(body) = self.client.find(Locator::Css("body")).await
                && body.text().await.is_ok_and(|t| t.contains(text))
            {
                return;
            }
            if started.elapsed() > timeout {
                self.fail_waiting(&format!("the text {text:?}"), timeout).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn fail_waiting(&mut self, what: &str, timeout: Duration) {
        let shot = self.screenshot("timeout").await;
        panic!(
            "waited {timeout:?} for {what} on {}; screenshot {}; the page shows:\n{}",
            self.url().await,
            shot.display(),
            self.body_text().await
        )
    }

    /// Saves a PNG of the viewport as `NN-<name>.png` in the test's
    /// screenshot folder, prints its path and returns it.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("taking the screenshot {name:?}: {e}"));
        self.taken += 1;
        std::fs::create_dir_all(&self.screenshots)
            .unwrap_or_else(|e| panic!("creating {}: {e}", self.screenshots.display()));
        let path = self
            .screenshots
            .join(format!("{:02}-{}.png", self.taken, file_safe(name)));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("screenshot: {}", path.display());
        path
    }

    /// Resizes the window, e.g. to a phone's width for a layout check.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resizing the window to {width}x{height}: {e}"));
    }

    /// Presses and releases `key` on whatever has the focus, as a keyboard
    /// does (no element is focused or clicked first).
    pub async fn press_key(&self, key: Key) {
        self.press_keys(&[key]).await
    }

    /// Presses `keys` down in order, then releases them in reverse: a chord
    /// such as `[Key::Shift, Key::Tab]`.
    pub async fn press_keys(&self, keys: &[Key]) {
        let mut actions = KeyActions::new("keyboard".into());
        for key in keys {
            actions = actions.then(KeyAction::Down {
                value: char::from(*key),
            });
        }
        for key in keys.iter().rev() {
            actions = actions.then(KeyAction::Up {
                value: char::from(*key),
            });
        }
        self.client
            .perform_actions(actions)
            .await
            .unwrap_or_else(|e| panic!("pressing {keys:?}: {e}"));
    }

    /// Moves the focus forward, as the Tab key does.
    pub async fn tab(&self) {
        self.press_key(Key::Tab).await
    }

    /// Moves the focus back (Shift+Tab).
    pub async fn shift_tab(&self) {
        self.press_keys(&[Key::Shift, Key::Tab]).await
    }

    /// The element that has the focus (`<body>` when nothing does).
    pub async fn active_element(&self) -> Element {
        self.client
            .active_element()
            .await
            .unwrap_or_else(|e| panic!("finding the focused element: {e}"))
    }

    /// The lowercase tag name of the focused element.
    pub async fn active_element_tag(&self) -> String {
        let element = self.active_element().await;
        self.tag(&element).await
    }

    /// What a screen reader would call the focused element, roughly: its
    /// visible text, else its `aria-label`, else its `<label>`'s text, else
    /// its value or placeholder.
    pub async fn active_element_text(&self) -> String {
        let script = format!(
            "{JS_PRELUDE}
            const el = document.activeElement;
            if (!el) return '';
            const label = el.labels && el.labels.length ? labelText(el.labels[0]) : '';
            return norm(el.innerText) || norm(el.getAttribute('aria-label')) || label
                || norm(el.value) || norm(el.getAttribute('placeholder'));"
        );
        let text = self
            .script(&script, vec![], "describing the focused element")
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Ends the session now and waits for it (drop does the same, blocking).
    pub async fn close(mut self) {
        if self.session_id.take().is_some() {
            let _ = self.client.clone().close().await;
        }
    }

    /// Runs `script` in the page, failing with `doing` in the message.
    pub async fn script(&self, script: &str, args: Vec<Value>, doing: &str) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{doing}: {e}"))
    }

    async fn tag(&self, element: &Element) -> String {
        element
            .tag_name()
            .await
            .unwrap_or_else(|e| panic!("reading a tag name: {e}"))
            .to_ascii_lowercase()
    }

    /// The one visible control labelled `label`.
    async fn labelled(&self, scope: Option<&str>, label: &str) -> Element {
        let script = format!(
            "{JS_PRELUDE}
            const [scope, wanted] = arguments;
            const labels = [...scopeOf(scope).querySelectorAll('label')];
            const controls = labels.filter(l => labelText(l) === wanted).map(l => l.control);
            return {{
                found: controls.filter(c => c && visible(c)),
                hidden: controls.filter(c => c && !visible(c)).length,
                unbound: controls.filter(c => !c).length,
                labels: labels.map(labelText),
            }};"
        );
        let found = self
            .script(
                &script,
                vec![json!(scope), json!(label)],
                &format!("finding the field {label:?}"),
            )
            .await;
        let elements = self.elements(&found["found"]);
        match elements.len() {
            1 => elements.into_iter().next().expect("one element"),
            0 => panic!(
                "no visible field labelled {label:?} on {} ({} hidden, {} labels without a control); \
                 labels on the page: {}",
                self.url().await,
                found["hidden"],
                found["unbound"],
                found["labels"]
            ),
            n => panic!(
                "{n} visible fields are labelled {label:?} on {}: pass a scope to tell them apart",
                self.url().await
            ),
        }
    }

    async fn choose_option(&self, select: &Element, label: &str, option: &str) {
        let script = format!(
            "{JS_PRELUDE}
            const [select, wanted] = arguments;
            const options = [...select.options];
            return {{
                found: options.filter(o => norm(o.text) === wanted),
                options: options.map(o => norm(o.text)),
            }};"
        );
        let select_json = serde_json::to_value(select).expect("an element serializes");
        let found = self
            .script(
                &script,
                vec![select_json, json!(option)],
                &format!("finding the option {option:?}"),
            )
            .await;
        let Some(element) = self.elements(&found["found"]).into_iter().next() else {
            panic!(
                "the select {label:?} has no option {option:?}; it has {}",
                found["options"]
            );
        };
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("choosing {option:?} in {label:?}: {e}"));
    }

    async fn click_by_text(&self, scope: Option<&str>, candidates: &str, kind: &str, text: &str) {
        let script = format!(
            "{JS_PRELUDE}
            const [scope, candidates, wanted] = arguments;
            const all = [...scopeOf(scope).querySelectorAll(candidates)].filter(visible);
            const shown = el => el.tagName === 'INPUT' ? norm(el.value) : norm(el.innerText);
            let found = all.filter(el => shown(el) === wanted);
            if (!found.length) found = all.filter(el => norm(el.getAttribute('aria-label')) === wanted);
            return {{ found, texts: all.map(el => shown(el) || norm(el.getAttribute('aria-label'))) }};"
        );
        let args = vec![json!(scope), json!(candidates), json!(text)];
        let found = self
            .script(&script, args, &format!("finding the {kind} {text:?}"))
            .await;
        let elements = self.elements(&found["found"]);
        let element = match elements.len() {
            1 => elements.into_iter().next().expect("one element"),
            0 => panic!(
                "no visible {kind} {text:?} on {}; the visible ones: {}",
                self.url().await,
                found["texts"]
            ),
            n => panic!(
                "{n} visible {kind}s read {text:?} on {}: pass a scope to tell them apart",
                self.url().await
            ),
        };
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking the {kind} {text:?}: {e}"));
    }

    /// Elements out of a script's returned array of element references.
    fn elements(&self, refs: &Value) -> Vec<Element> {
        refs.as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let id = r[ELEMENT_KEY]
                    .as_str()
                    .unwrap_or_else(|| panic!("not an element reference: {r}"));
                Element::from_element_id(self.client.clone(), ElementRef::from(id.to_owned()))
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop can't await the client; ask chromedriver directly so chromium
        // shuts down cleanly before the group is killed.
        if let Some(session) = self.session_id.take() {
            delete_session(self.driver.port, &session);
        }
        self.driver.kill();
        // chromium's helpers exit as their parent dies: wait for them to let
        // go of the profile before the temp dir is removed.
        let started = Instant::now();
        while chromium_running(self.scratch.path()) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts chromedriver on a free port and opens a headless chromium session
/// through it.
async fn start_session(log_path: &Path, profile: &Path) -> Result<(Driver, Client), String> {
    let port = super::closed_port();
    let output = std::fs::File::create(log_path.with_extension("out"))
        .map_err(|e| format!("creating chromedriver's output file: {e}"))?;
    let mut command = Command::new(CHROMEDRIVER);
    // Its own process group, so drop can kill chromium with it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .arg(format!("--port={port}"))
        // Its own log file is written as it goes; its stdout is buffered and
        // lost if it dies.
        .arg(format!("--log-path={}", log_path.display()))
        .stdin(Stdio::null())
        .stdout(output.try_clone().map_err(|e| e.to_string())?)
        .stderr(output)
        .spawn()
        .map_err(|e| format!("starting {CHROMEDRIVER}: {e}"))?;
    // From here a failure drops `driver`, which kills it.
    let mut driver = Driver {
        child,
        port,
        killed: false,
    };
    driver.wait_until_ready()?;
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,900",
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("json! of an object literal is an object")
    };
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(capabilities);
    match builder.connect(&format!("http://127.0.0.1:{port}")).await {
        Ok(client) => Ok((driver, client)),
        Err(e) => Err(format!("starting a chromium session failed: {e}")),
    }
}

/// A chromedriver process, leader of its own process group; killed with
/// everything it started when dropped.
struct Driver {
    child: Child,
    port: u16,
    killed: bool,
}

impl Driver {
    /// Waits until its `/status` says it is ready, or says why it never
    /// will. Asking `/status` rather than only connecting makes sure the
    /// listener on the port is this chromedriver and not another process
    /// that took the port first.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let port = self.port;
        let started = Instant::now();
        loop {
            let status = plain_request(port, "GET", "/status", Duration::from_secs(5));
            if status.as_deref().is_some_and(|s| s.contains("\"ready\":true")) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "chromedriver exited with {status} before listening on port {port}"
                ));
            }
            if started.elapsed() > DRIVER_START_TIMEOUT {
                return Err(format!(
                    "chromedriver was not ready on port {port} within {DRIVER_START_TIMEOUT:?} \
                     (last /status: {status:?})"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        let group = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals a process group: this
        // one is chromedriver's own (`process_group(0)`), holding chromium
        // and its helpers, and stays reserved until we reap chromedriver below.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `DELETE /session/<id>` over a plain socket, bounded in time.
fn delete_session(port: u16, session: &str) {
    // chromedriver answers once chromium has quit.
    let _ = plain_request(
        port,
        "DELETE",
        &format!("/session/{session}"),
        Duration::from_secs(15),
    );
}

/// One HTTP/1.1 request to chromedriver over a plain socket (usable where
/// nothing can be awaited), returning the response's body, or `None` if
/// there was no whole response within `timeout`.
fn plain_request(port: u16, method: &str, path: &str, timeout: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    // chromedriver keeps the connection open regardless of `Connection:
    // close`, so read just the response (headers, then Content-Length
    // bytes), not to the end of the stream.
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let body = end + 4;
            if response.len() >= body + length {
                return Some(String::from_utf8_lossy(&response[body..body + length]).into_owned());
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether any process still runs with `profile_parent` in its command line.
fn chromium_running(profile_parent: &Path) -> bool {
    let needle = profile_parent.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(needle.len()).any(|w| w == needle))
    })
}

/// `<target>/portal-screenshots/<test>/`, emptied the first time a test of
/// this process uses it so old runs' screenshots don't mix in (and created
/// by the first screenshot).
fn screenshot_dir(test: &str) -> PathBuf {
    static EMPTIED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(super::target_dir);
    let dir = target.join("portal-screenshots").join(file_safe(test));
    let mut emptied = EMPTIED.lock().unwrap_or_else(|e| e.into_inner());
    if emptied.get_or_insert_with(HashSet::new).insert(dir.clone()) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    dir
}

/// `name` with anything but letters, digits, `-` and `_` made `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
