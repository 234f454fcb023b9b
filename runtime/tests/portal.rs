//! The management portal at `/admin/`, end to end in a real headless
//! chromium (see `support/browser.rs`) against the real server, with the
//! bundled Roblox Kit talking to a stub of the Roblox users API on loopback.
//! Each test keeps numbered screenshots of the pages it saw under
//! `target/portal-screenshots/<test>/`.

mod support;

use std::time::Duration;

use fantoccini::key::Key;
use serde_json::{Value, json};
use support::browser::Browser;
use support::roblox::{self, PLAYER};
use support::{Dirs, ROOT_PASSWORD, Server, root_secret};

const SECRET: &str = "roblox-shared-secret-0123456789";
const WAIT: Duration = Duration::from_secs(30);

/// A server with the Roblox Kit in its deploy folder, pointed at the stub on
/// `port`; with its secret when `secret` is given.
fn start_with_kit(dirs: &Dirs, port: u16, secret: Option<&str>) -> Server {
    let api = format!("http://127.0.0.1:{port}/v1");
    // The operator approves the Kit's grants and the stub's address.
    let stub = format!("http.outbound:127.0.0.1:{port}");
    let grants = [support::ROBLOX_KIT_GRANTS, &[stub.as_str()]].concat();
    dirs.config(&support::grants_section("roblox-kit", &grants));
    let mut values = vec![
        ("dev.getelements.robloxkit.roblox.users.api.url", api.as_str()),
        (
            "dev.getelements.robloxkit.roblox.thumbnails.api.url",
            api.as_str(),
        ),
    ];
    if let Some(secret) = secret {
        values.push(("dev.getelements.robloxkit.secret", secret));
    }
    dirs.deploy_bundled("roblox-kit", "roblox-kit", &values);
    Server::start_with(dirs, &[], support::ROOT_ENV, None)
}

async fn log_in(b: &mut Browser, server: &Server, login: &str, password: &str) {
    b.goto(&server.admin_url("/admin/login")).await;
    b.wait_for_text("The management portal is for superusers.", WAIT)
        .await;
    b.fill("Name or email", login).await;
    b.fill("Password", password).await;
    b.click_button("Log in").await;
}

/// Every visible form control of the current page has a label (its own
/// `<label>`, or an ARIA label): returns the ones that don't.
async fn unlabelled_controls(b: &Browser) -> Vec<Value> {
    let found = b
        .script(
            r#"return [...document.querySelectorAll('input, select, textarea')]
                .filter(c => c.type !== 'hidden')
                .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label'))
                .map(c => c.outerHTML);"#,
            vec![],
            "finding unlabelled controls",
        )
        .await;
    found.as_array().cloned().unwrap_or_default()
}

/// Whether the page fits the window's width (tables may scroll inside
/// their own box). Returns what sticks out (none when it fits).
async fn wider_than_window(b: &Browser) -> Vec<Value> {
    let found = b
        .script(
            r#"if (document.documentElement.scrollWidth <= window.innerWidth) return [];
               return [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                 .filter(e => !e.closest('.table-wrap'))
                 .slice(0, 5)
                 .map(e => e.outerHTML.slice(0, 200));"#,
            vec![],
            "measuring the page width",
        )
        .await;
    found.as_array().cloned().unwrap_or_default()
}

/// Scrolls `css` into view, for a screenshot of what is below the fold.
async fn scroll_to(b: &Browser, css: &str) {
    b.script(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'start'});",
        vec![json!(css)],
        "scrolling",
    )
    .await;
}

/// Root logged in to the portal of a server with the Kit (and its secret)
/// against a fresh stub.
async fn root_in_the_kits_portal() -> (Server, Dirs, Browser) {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = start_with_kit(&dirs, port, Some(SECRET));
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    (server, dirs, b)
}

/// The application `my_game`, made through the API as `root`.
async fn create_my_game(server: &Server) {
    let root = root_secret(server).await;
    let (status, body) = support::request(
        server,
        "POST",
        "/api/rest/application",
        Some(&root),
        Some(json!({"name": "my_game"})),
    )
    .await;
    assert!(
        status == 200 || status == 201,
        "creating my_game: {status} {body}"
    );
}

/// A Roblox game server registers [`PLAYER`] in `my_game` through the Kit.
async fn register_player(server: &Server) {
    let response = server
        .client
        .post(server.url("/app/rest/roblox/auth"))
        .header("RobloxKit-Secret", SECRET)
        .json(&json!({"application": "my_game", "robloxUserId": PLAYER}))
        .send()
        .await
        .expect("calling the Roblox Kit");
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

// The walk-through of the Roblox Kit guide, one step a test: log in to the
// portal, create an application, check the Kit is deployed (green light, no
// errors in its log, secret set), register a player from a "game server",
// and find the player's profile under Profiles.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_sends_a_visitor_to_its_login_page_whose_controls_are_labelled() {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = start_with_kit(&dirs, port, Some(SECRET));
    let mut b = Browser::start().await;
    b.goto(&server.admin_url("/admin/")).await;
    assert!(b.url().await.contains("/admin/login"), "sent to the login page");
    b.wait_for_text("The management portal is for superusers.", WAIT)
        .await;
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    b.screenshot("login").await;
    b.close().await;
}

/// Home after logging in: the counts, the version and a link to the API
/// documentation, which the public listener serves, not this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_shows_the_counts_the_version_and_the_public_listeners_swagger_ui() {
    let (server, _dirs, mut b) = root_in_the_kits_portal().await;
    assert_eq!(b.text_of("#count-applications").await, "0");
    assert_eq!(b.text_of("#count-users").await, "1");
    assert_eq!(b.text_of("#count-elements").await, "1");
    assert_eq!(b.text_of("#version").await, env!("CARGO_PKG_VERSION"));
    assert!(b.body_text().await.contains("Swagger UI"));
    let swagger = b
        .script(
            "return document.querySelector('a[href$=\"/doc/swagger/\"]').href;",
            vec![],
            "reading the Swagger UI link",
        )
        .await;
    assert_eq!(swagger, json!(server.url("/doc/swagger/")));
    b.screenshot("home").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_session_cookie_is_http_only_same_site_strict_and_scoped_to_the_portal() {
    let (_server, _dirs, b) = root_in_the_kits_portal().await;
    let cookies = b.client.get_all_cookies().await.expect("reading cookies");
    let session = cookies
        .iter()
        .find(|c| c.name() == "elements_admin")
        .expect("a portal session cookie");
    assert_eq!(session.http_only(), Some(true), "{session:?}");
    assert_eq!(
        format!("{:?}", session.same_site()),
        "Some(Strict)",
        "{session:?}"
    );
    assert_eq!(session.path(), Some("/admin"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_creates_an_application_with_labelled_controls() {
    let (_server, _dirs, mut b) = root_in_the_kits_portal().await;
    b.click_link("Applications").await;
    b.wait_for_text("Create application", WAIT).await;
    b.fill("Name", "my_game").await;
    b.fill("Description", "My Roblox experience").await;
    b.click_button("Create application").await;
    b.wait_for_text("Created the application my_game.", WAIT).await;
    assert!(b.text_of("table").await.contains("My Roblox experience"));
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    b.screenshot("applications").await;
    b.close().await;
}

/// The Roblox Kit: a green light in the left bar, no errors in its log, and
/// its secret set (shown masked, never in the page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_kit_shows_a_green_light_a_clean_log_and_its_secret_masked() {
    let (_server, _dirs, mut b) = root_in_the_kits_portal().await;
    b.click_link("Elements").await;
    b.wait_for_css("#element-list a[data-element='roblox-kit'] .light.green", WAIT)
        .await;
    b.find_css("#element-list a[data-element='roblox-kit']")
        .await
        .click()
        .await
        .expect("opening the Roblox Kit");
    b.wait_for_text("Save attributes and redeploy", WAIT).await;
    assert_eq!(b.text_of("#status").await, "LOADED");
    assert_eq!(b.text_of("#mount-path").await, "/app/rest/roblox");
    assert_eq!(
        b.text_of(".masked[data-attribute='dev.getelements.robloxkit.secret']")
            .await,
        "********"
    );
    let source = b.client.source().await.expect("page source");
    assert!(!source.contains(SECRET), "the secret never reaches the browser");
    let log = b
        .script(
            "return [document.querySelectorAll('#log-lines tr').length, \
                     document.querySelectorAll('#log-lines tr.level-ERROR').length];",
            vec![],
            "counting log lines",
        )
        .await;
    assert!(
        log[0].as_u64().unwrap_or(0) >= 1,
        "the deploy is in the log: {log}"
    );
    assert_eq!(log[1], 0, "no errors in the log");
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    b.screenshot("roblox-kit").await;
    scroll_to(&b, "#attributes-heading").await;
    b.screenshot("roblox-kit-attributes").await;
    scroll_to(&b, "#log-heading").await;
    b.screenshot("roblox-kit-log").await;
    b.close().await;
}

/// A player a game server registered through the Kit is found under
/// Profiles, with the Roblox profile in its metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_registered_by_a_game_server_is_found_under_profiles() {
    let (server, _dirs, mut b) = root_in_the_kits_portal().await;
    create_my_game(&server).await;
    register_player(&server).await;
    b.click_link("Profiles").await;
    b.wait_for_text("Search profiles", WAIT).await;
    b.select("Application", "my_game").await;
    b.fill("Display name starts with", "Builder").await;
    b.click_button("Search profiles").await;
    b.wait_for_text("Showing 1–1 of 1.", WAIT).await;
    assert!(b.text_of("table").await.contains("builderman_x"));
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    b.screenshot("profiles").await;
    b.click_link("Builder X").await;
    b.wait_for_text("Metadata", WAIT).await;
    let metadata: Value = serde_json::from_str(&b.text_of("#metadata").await).expect("metadata is JSON");
    assert_eq!(metadata["robloxProfile"]["id"], json!(PLAYER), "{metadata}");
    assert_eq!(metadata["robloxProfile"]["name"], "builderman_x", "{metadata}");
    b.screenshot("profile").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_counts_the_application_and_the_player_made() {
    let (server, _dirs, mut b) = root_in_the_kits_portal().await;
    create_my_game(&server).await;
    register_player(&server).await;
    b.click_link("Home").await;
    b.wait_for_text("API documentation", WAIT).await;
    assert_eq!(b.text_of("#count-applications").await, "1");
    assert_eq!(b.text_of("#count-users").await, "2");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_the_portal_session_on_the_server_too() {
    let (server, _dirs, mut b) = root_in_the_kits_portal().await;
    b.click_button("Log out").await;
    b.wait_for_text("Logged out.", WAIT).await;
    b.goto(&server.admin_url("/admin/applications")).await;
    assert!(
        b.url().await.contains("/admin/login"),
        "logged out: {}",
        b.url().await
    );
    b.close().await;
}

/// Root logged in to the portal on the page of a Roblox Kit deployed without
/// its secret, so the deploy failed.
async fn root_on_the_failed_kits_page() -> (Server, Dirs, Browser) {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = start_with_kit(&dirs, port, None);
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    b.goto(&server.admin_url("/admin/elements/roblox-kit")).await;
    b.wait_for_css("#element-list a[data-element='roblox-kit'] .light.red", WAIT)
        .await;
    (server, dirs, b)
}

/// Types the secret into the attribute editor and saves: the Kit serves
/// version 1.
async fn set_the_secret(b: &mut Browser) {
    b.find_css("input[name='value:dev.getelements.robloxkit.secret']")
        .await
        .send_keys(SECRET)
        .await
        .expect("typing the secret");
    b.click_button("Save attributes and redeploy").await;
    b.wait_for_text("Saved 1 attribute; roblox-kit is serving version 1.", WAIT)
        .await;
}

/// Root on the page of a Kit that serves version 1, its secret set in the
/// attribute editor.
async fn root_on_the_serving_kits_page() -> (Server, Dirs, Browser) {
    let (server, dirs, mut b) = root_on_the_failed_kits_page().await;
    set_the_secret(&mut b).await;
    (server, dirs, b)
}

const EXPIRY: &str = "input[name='value:dev.getelements.robloxkit.session.expiry.seconds']";
const CLEAR_EXPIRY: &str = "input[name='clear:dev.getelements.robloxkit.session.expiry.seconds']";

/// A login to the Kit with a wrong secret: its status.
async fn wrong_secret_login(server: &Server) -> u16 {
    kit_login(server, "not-the-secret").await
}

/// A login to the Kit with `secret`, to an application that doesn't exist:
/// its status.
async fn kit_login(server: &Server, secret: &str) -> u16 {
    let login = json!({"application": "nowhere", "robloxUserId": PLAYER});
    server
        .client
        .post(server.url("/app/rest/roblox/auth"))
        .header("RobloxKit-Secret", secret)
        .json(&login)
        .send()
        .await
        .expect("calling the Roblox Kit")
        .status()
        .as_u16()
}

async fn expiry_value(b: &Browser) -> Option<String> {
    b.find_css(EXPIRY).await.prop("value").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kit_without_its_secret_shows_a_red_light_and_the_missing_attribute() {
    let (_server, _dirs, mut b) = root_on_the_failed_kits_page().await;
    assert_eq!(b.text_of("#status").await, "FAILED");
    assert!(
        b.text_of("#last-error-text")
            .await
            .contains("required attribute \"dev.getelements.robloxkit.secret\" has no value")
    );
    b.screenshot("kit-failed").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_refuses_to_send_the_attributes_while_the_required_secret_is_empty() {
    let (_server, _dirs, b) = root_on_the_failed_kits_page().await;
    b.click_button("Save attributes and redeploy").await;
    let still_here = b
        .script(
            "return document.querySelector('#attributes-form input[type=password]').validity.valueMissing;",
            vec![],
            "checking the browser's validation",
        )
        .await;
    assert_eq!(still_here, json!(true));
    b.close().await;
}

/// Setting the secret in the attribute editor redeploys the Kit (green),
/// which then serves with the secret the operator typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_the_secret_in_the_portal_redeploys_the_kit_with_it() {
    let (server, _dirs, mut b) = root_on_the_failed_kits_page().await;
    set_the_secret(&mut b).await;
    b.wait_for_css("#element-list a[data-element='roblox-kit'] .light.green", WAIT)
        .await;
    assert_eq!(b.text_of("#status").await, "LOADED");
    assert!(
        b.find_css("#last-error")
            .await
            .attr("hidden")
            .await
            .unwrap()
            .is_some()
    );
    assert!(!b.client.source().await.unwrap().contains(SECRET));
    b.screenshot("kit-secret-set").await;
    assert_eq!(wrong_secret_login(&server).await, 403);
    assert_eq!(
        kit_login(&server, SECRET).await,
        404,
        "the typed secret lets the login through to the (unknown) application"
    );
    b.close().await;
}

/// A plain attribute: the value is shown, and saving redeploys (version
/// 2); leaving the masked secret blank keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_plain_attribute_redeploys_and_a_blank_secret_keeps_its_value() {
    let (_server, _dirs, mut b) = root_on_the_serving_kits_page().await;
    assert_eq!(expiry_value(&b).await.as_deref(), Some("86400"));
    b.find_css(EXPIRY).await.clear().await.unwrap();
    b.find_css(EXPIRY).await.send_keys("3600").await.unwrap();
    b.click_button("Save attributes and redeploy").await;
    b.wait_for_text("Saved 1 attribute; roblox-kit is serving version 2.", WAIT)
        .await;
    assert_eq!(b.text_of("#version").await, "2");
    assert_eq!(expiry_value(&b).await.as_deref(), Some("3600"));
    assert_eq!(b.text_of("#status").await, "LOADED");
    b.screenshot("kit-expiry-edited").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_value_set_in_the_portal_goes_back_to_the_default() {
    let (_server, _dirs, mut b) = root_on_the_serving_kits_page().await;
    b.find_css(EXPIRY).await.clear().await.unwrap();
    b.find_css(EXPIRY).await.send_keys("3600").await.unwrap();
    b.click_button("Save attributes and redeploy").await;
    b.wait_for_text("Saved 1 attribute; roblox-kit is serving version 2.", WAIT)
        .await;
    b.find_css(CLEAR_EXPIRY)
        .await
        .click()
        .await
        .expect("ticking the removal");
    b.click_button("Save attributes and redeploy").await;
    b.wait_for_text("Saved 1 attribute; roblox-kit is serving version 3.", WAIT)
        .await;
    assert_eq!(expiry_value(&b).await.as_deref(), Some("86400"));
    b.close().await;
}

/// A typed attribute: the browser refuses a number out of the declared
/// range before sending; past it, the deploy refuses it, says why, and the
/// previous version keeps serving; removing the value deploys again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_number_is_refused_by_the_browser_and_then_by_the_deploy() {
    let (_server, _dirs, mut b) = root_on_the_serving_kits_page().await;
    b.find_css(EXPIRY).await.clear().await.unwrap();
    b.find_css(EXPIRY).await.send_keys("99999999").await.unwrap();
    b.click_button("Save attributes and redeploy").await;
    let overflow = b
        .script(
            "return document.querySelector(arguments[0]).validity.rangeOverflow;",
            vec![json!(EXPIRY)],
            "checking the browser's range check",
        )
        .await;
    assert_eq!(overflow, json!(true));
    assert_eq!(b.text_of("#version").await, "1", "nothing was sent");
    b.script(
        "document.querySelector(arguments[0]).removeAttribute('max');",
        vec![json!(EXPIRY)],
        "switching off the browser's check",
    )
    .await;
    b.click_button("Save attributes and redeploy").await;
    b.wait_for_text("must be at most 7776000", WAIT).await;
    b.wait_for_text("The previous version keeps serving: version 1.", WAIT)
        .await;
    assert_eq!(b.text_of("#status").await, "SERVING");
    assert_eq!(
        b.text_of("#serving").await,
        "version 1; the deploy of version 2 failed"
    );
    b.screenshot("kit-out-of-range").await;
    b.find_css(CLEAR_EXPIRY)
        .await
        .click()
        .await
        .expect("ticking the removal");
    b.click_button("Save attributes and redeploy").await;
    b.wait_for_text("Saved 1 attribute; roblox-kit is serving version 2.", WAIT)
        .await;
    b.close().await;
}

/// The server validates again: a value the deploy refuses fails it, says
/// why, and the previous version keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_the_deploy_refuses_fails_it_and_the_previous_version_keeps_serving() {
    let (server, _dirs, mut b) = root_on_the_serving_kits_page().await;
    let url = "input[name='value:dev.getelements.robloxkit.roblox.users.api.url']";
    b.script(
        "const input = document.querySelector(arguments[0]); input.type = 'text'; input.removeAttribute('pattern');",
        vec![json!(url)],
        "switching off the browser's URL check",
    )
    .await;
    b.find_css(url).await.clear().await.unwrap();
    b.find_css(url).await.send_keys("not-a-url").await.unwrap();
    b.click_button("Save attributes and redeploy").await;
    b.wait_for_text("but the deploy failed", WAIT).await;
    b.wait_for_text("The previous version keeps serving: version 1.", WAIT)
        .await;
    assert_eq!(b.text_of("#status").await, "SERVING");
    assert_eq!(
        b.text_of("#serving").await,
        "version 1; the deploy of version 2 failed"
    );
    assert!(
        b.text_of("#last-error-text")
            .await
            .contains("must be an http:// or https:// URL")
    );
    b.wait_for_css("#element-list a[data-element='roblox-kit'] .light.amber", WAIT)
        .await;
    b.screenshot("kit-bad-value").await;
    assert_eq!(
        wrong_secret_login(&server).await,
        403,
        "the previous version still answers"
    );
    b.close().await;
}

/// Uploading a component through the portal: a good one serves (its log
/// refreshes on the open page), a broken new version shows an amber light,
/// SERVING, and its error while the previous version keeps serving, disabling turns the
/// light grey, and removing it takes it away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_failed_deploys_and_the_live_log() {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;

    b.click_link("Elements").await;
    b.wait_for_text("Deploy a new Element", WAIT).await;
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    let component = support::guest("misbehave");
    b.fill("Name", "probe").await;
    b.find_css("#deploy-component")
        .await
        .send_keys(component.to_str().unwrap())
        .await
        .expect("choosing the component file");
    b.click_button("Deploy Element").await;
    b.wait_for_text("Uploaded probe; probe is serving version 1.", WAIT)
        .await;
    b.wait_for_css("#element-list a[data-element='probe'] .light.green", WAIT)
        .await;
    assert_eq!(b.text_of("#mount-path").await, "/app/rest/probe");
    b.screenshot("uploaded").await;

    // The log refreshes while the page is open.
    let logged = server.get("/app/rest/probe/log").await;
    assert_eq!(logged.status(), 200);
    b.wait_for_text("level test info", WAIT).await;
    scroll_to(&b, "#log-heading").await;
    b.screenshot("live-log").await;

    // A broken new version: red light and its error; version 1 keeps serving.
    let broken = dirs.root.path().join("broken.wasm");
    // A component's header, then garbage: accepted, and the deploy fails.
    std::fs::write(&broken, b"\0asm\x0d\x00\x01\x00 this is not a component").unwrap();
    b.find_css("#version-component")
        .await
        .send_keys(broken.to_str().unwrap())
        .await
        .expect("choosing the broken file");
    b.click_button("Upload new version").await;
    b.wait_for_text("but the deploy failed", WAIT).await;
    b.wait_for_text("The previous version keeps serving: version 1.", WAIT)
        .await;
    b.wait_for_css("#element-list a[data-element='probe'] .light.amber", WAIT)
        .await;
    assert_eq!(b.text_of("#status").await, "SERVING");
    assert_eq!(
        b.text_of("#serving").await,
        "version 1; the deploy of version 2 failed"
    );
    assert!(!b.text_of("#last-error-text").await.is_empty());
    b.screenshot("failed-version").await;
    let ok = server.get("/app/rest/probe/ok").await;
    assert_eq!(ok.status(), 200, "version 1 still serves");

    // A bad name is refused by the server with its reason, even past the
    // browser's own check.
    b.goto(&server.admin_url("/admin/elements")).await;
    b.wait_for_text("Deploy a new Element", WAIT).await;
    b.script(
        "document.getElementById('deploy-name').removeAttribute('pattern');",
        vec![],
        "switching off the browser's check",
    )
    .await;
    b.fill("Name", "no spaces allowed").await;
    b.find_css("#deploy-component")
        .await
        .send_keys(component.to_str().unwrap())
        .await
        .unwrap();
    b.click_button("Deploy Element").await;
    b.wait_for_text("must be 1 to 48 characters", WAIT).await;
    assert!(!b.text_of("#flash").await.is_empty());
    b.screenshot("bad-name").await;

    // Disable: grey light, no longer served; enable: served again.
    b.goto(&server.admin_url("/admin/elements/probe")).await;
    b.click_button("Disable").await;
    b.wait_for_text("Disabled; probe is disabled.", WAIT).await;
    b.wait_for_css("#element-list a[data-element='probe'] .light.grey", WAIT)
        .await;
    assert_eq!(server.get("/app/rest/probe/ok").await.status(), 404);
    b.screenshot("disabled").await;
    b.click_button("Enable").await;
    b.wait_for_text("Enabled", WAIT).await;
    assert_eq!(
        b.text_of("#status").await,
        "FAILED",
        "its stored version is the broken one"
    );
    assert_eq!(
        b.text_of("#serving").await,
        "nothing; the deploy of version 2 failed"
    );

    // Remove (after confirming).
    b.click_button("Remove Element").await;
    b.client.accept_alert().await.expect("confirming the removal");
    b.wait_for_text("Removed probe; it no longer serves.", WAIT).await;
    assert!(!b.text_of("nav.sidebar").await.contains("probe"));
    b.close().await;
}

/// A server whose `root` has [`ROOT_PASSWORD`], with user `ana`
/// (`ana@example.com`, password `ana-password-1`): the server, its folders
/// and ana's id.
async fn server_with_ana() -> (Server, Dirs, String) {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let (status, signup) = support::request(
        &server,
        "POST",
        "/api/rest/signup/session",
        None,
        Some(json!({"name": "ana", "email": "ana@example.com", "password": "ana-password-1"})),
    )
    .await;
    assert_eq!(status, 200, "{signup}");
    let ana_id = signup["session"]["user"]["id"].as_str().unwrap().to_owned();
    (server, dirs, ana_id)
}

/// Sets ana's level through the API, as `root`.
async fn set_level(server: &Server, root: &str, ana_id: &str, level: &str) {
    let (status, body) = support::request(
        server,
        "PUT",
        &format!("/api/rest/user/{ana_id}"),
        Some(root),
        Some(json!({"level": level})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Ana, made a superuser through the API, logged in to the portal in a
/// browser of her own.
async fn ana_superuser_in_the_portal(server: &Server, root: &str, ana_id: &str, test: &str) -> Browser {
    set_level(server, root, ana_id, "SUPERUSER").await;
    let mut ana = Browser::start_named(&format!("{test}/ana")).await;
    log_in(&mut ana, server, "ana", "ana-password-1").await;
    ana.wait_for_text("Logged in as ana.", WAIT).await;
    ana
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_forbids_framing_scripts_from_elsewhere_and_caching_and_sets_its_own_token_cookie() {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let login_page = server
        .client
        .get(server.admin_url("/admin/login"))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        login_page
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-security-policy").contains("script-src 'self'"));
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    let set_cookie = header("set-cookie");
    assert!(
        set_cookie.starts_with("elements_admin_login=") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_or_a_wrong_password_gets_no_portal_session() {
    let (server, _dirs, _) = server_with_ana().await;
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "ana@example.com", "ana-password-1").await;
    b.wait_for_text("This account is not a superuser", WAIT).await;
    b.screenshot("user-refused").await;
    let cookies = b.client.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name() != "elements_admin"),
        "{cookies:?}"
    );
    b.goto(&server.admin_url("/admin/users")).await;
    assert!(b.url().await.contains("/admin/login"));

    log_in(&mut b, &server, "root", "not-the-password").await;
    b.wait_for_text("Log in", WAIT).await;
    assert!(b.text_of("#login-error").await.len() > 5);
    b.screenshot("wrong-password").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_works_with_the_keyboard_alone_and_the_first_tab_reaches_the_skip_link() {
    let dirs = Dirs::new();
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let mut b = Browser::start().await;
    b.goto(&server.admin_url("/admin/login")).await;
    b.wait_for_text("The management portal is for superusers.", WAIT)
        .await;
    assert_eq!(
        b.active_element().await.attr("id").await.unwrap().as_deref(),
        Some("login")
    );
    b.active_element().await.send_keys("root").await.unwrap();
    b.tab().await;
    assert_eq!(
        b.active_element().await.attr("id").await.unwrap().as_deref(),
        Some("password")
    );
    b.active_element().await.send_keys(ROOT_PASSWORD).await.unwrap();
    b.press_key(Key::Enter).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    b.tab().await;
    assert_eq!(b.active_element_text().await, "Skip to content");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_finds_and_promotes_a_user_who_then_reaches_the_portal() {
    let (server, _dirs, _) = server_with_ana().await;
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    b.click_link("Users").await;
    b.fill("Name or email starts with", "an").await;
    b.click_button("Search users").await;
    b.wait_for_text("Showing 1–1 of 1.", WAIT).await;
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    b.screenshot("users").await;
    b.click_link("ana").await;
    b.wait_for_text("ana@example.com", WAIT).await;
    assert_eq!(b.text_of("#user-level").await, "USER");
    b.select("Level", "SUPERUSER").await;
    b.click_button("Change level").await;
    b.wait_for_text("ana is now SUPERUSER.", WAIT).await;
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    b.screenshot("user-promoted").await;
    b.close().await;

    // Ana, now a superuser, logs in in her own browser.
    let mut ana =
        Browser::start_named("a_superuser_finds_and_promotes_a_user_who_then_reaches_the_portal/ana").await;
    log_in(&mut ana, &server, "ana", "ana-password-1").await;
    ana.wait_for_text("Logged in as ana.", WAIT).await;
    ana.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_form_without_its_token_or_from_another_origin_is_refused_and_creates_nothing() {
    let (server, _dirs, ana_id) = server_with_ana().await;
    let root = root_secret(&server).await;
    let ana = ana_superuser_in_the_portal(
        &server,
        &root,
        &ana_id,
        "a_portal_form_without_its_token_or_from_another_origin_is_refused_and_creates_nothing",
    )
    .await;
    // Ana's own cookie, but no token, a wrong token, or another site's origin.
    let cookie = ana
        .client
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "elements_admin")
        .expect("ana's session cookie");
    let cookie = format!("elements_admin={}", cookie.value());
    for (token, origin) in [("", None), ("0123abcd", None), ("", Some("http://evil.example"))] {
        let mut request = server
            .client
            .post(server.admin_url("/admin/applications"))
            .header("cookie", &cookie)
            .form(&[("name", "forged"), ("csrf", token)]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "token {token:?} origin {origin:?}");
    }
    let (status, apps) = support::request(&server, "GET", "/api/rest/application", Some(&root), None).await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(apps["total"], 0, "no forged application: {apps}");
    ana.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_superuser_loses_the_portal_at_once() {
    let (server, _dirs, ana_id) = server_with_ana().await;
    let root = root_secret(&server).await;
    let mut ana = ana_superuser_in_the_portal(
        &server,
        &root,
        &ana_id,
        "a_demoted_superuser_loses_the_portal_at_once",
    )
    .await;
    // Demoted here through the API.
    set_level(&server, &root, &ana_id, "USER").await;
    ana.goto(&server.admin_url("/admin/users")).await;
    ana.wait_for_text("This account is not a superuser", WAIT).await;
    assert!(ana.url().await.contains("/admin/login"));
    ana.screenshot("demoted").await;
    ana.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_bans_a_user_after_confirming_lifts_the_ban_and_cannot_lock_themselves_out() {
    let (server, _dirs, ana_id) = server_with_ana().await;
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    b.goto(&server.admin_url(&format!("/admin/users/{ana_id}"))).await;
    b.click_button("Ban user").await;
    b.client.accept_alert().await.expect("confirming the ban");
    b.wait_for_text("Banned ana; their sessions are revoked.", WAIT)
        .await;
    assert!(b.text_of("#user-status").await.starts_with("Banned"));
    b.screenshot("user-banned").await;
    b.click_button("Lift the ban").await;
    b.wait_for_text("Lifted the ban on ana.", WAIT).await;
    assert_eq!(b.text_of("#user-status").await, "Active");

    b.goto(&server.admin_url("/admin/users?q=root")).await;
    b.click_link("root").await;
    b.wait_for_text("This is your own account", WAIT).await;
    b.close().await;
}

/// Every page at a phone's width: nothing is cut off or scrolls sideways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_phone_width_window() {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = start_with_kit(&dirs, port, Some(SECRET));
    let mut b = Browser::start().await;
    b.set_window_size(390, 844).await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    for (path, name, text) in [
        ("/admin/", "home", "API documentation"),
        ("/admin/applications", "applications", "Create application"),
        ("/admin/elements", "elements", "Deploy a new Element"),
        (
            "/admin/elements/roblox-kit",
            "element",
            "Save attributes and redeploy",
        ),
        ("/admin/users", "users", "Search users"),
        ("/admin/profiles", "profiles", "Search profiles"),
    ] {
        b.goto(&server.admin_url(path)).await;
        b.wait_for_text(text, WAIT).await;
        b.screenshot(&format!("phone-{name}")).await;
        let wide = wider_than_window(&b).await;
        assert!(wide.is_empty(), "{path} scrolls sideways at 390 px: {wide:?}");
        assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new(), "{path}");
    }
    b.close().await;
}

/// Applications: the browser checks the name first, the server again
/// (duplicates); edit, rename and delete (after confirming); a missing one
/// is a clear error page. Elements are reachable by keyboard alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_are_created_edited_and_deleted() {
    let port = roblox::start().await;
    let dirs = Dirs::new();
    let server = start_with_kit(&dirs, port, Some(SECRET));
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;

    b.click_link("Applications").await;
    b.wait_for_text("No applications yet", WAIT).await;
    // The browser refuses a name the server would refuse, before sending.
    b.fill("Name", "not a name!").await;
    b.click_button("Create application").await;
    let invalid = b
        .script(
            "return document.getElementById('app-name').validity.patternMismatch;",
            vec![],
            "checking the browser's validation",
        )
        .await;
    assert_eq!(invalid, json!(true));
    assert!(
        b.body_text().await.contains("No applications yet"),
        "nothing was sent"
    );

    b.fill("Name", "game_one").await;
    b.click_button("Create application").await;
    b.wait_for_text("Created the application game_one.", WAIT).await;
    // The server checks again: the name is taken.
    b.fill("Name", "game_one").await;
    b.click_button("Create application").await;
    b.wait_for_text("Application name is already in use.", WAIT).await;
    assert_eq!(
        b.find_css("#flash").await.attr("role").await.unwrap().as_deref(),
        Some("alert")
    );
    b.screenshot("duplicate").await;

    // Edit: description, then a rename.
    b.click_link("game_one").await;
    b.wait_for_text("Save application", WAIT).await;
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());
    b.fill("Description", "The first game").await;
    b.click_button("Save application").await;
    b.wait_for_text("Saved the application game_one.", WAIT).await;
    b.fill("Name", "game_uno").await;
    b.click_button("Save application").await;
    b.wait_for_text("Saved the application game_uno.", WAIT).await;
    assert_eq!(
        b.find_css("#app-description")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("The first game")
    );
    b.screenshot("application").await;

    // Delete, after confirming (dismissing the question keeps it).
    b.click_button("Delete application").await;
    b.client.dismiss_alert().await.expect("declining the deletion");
    assert!(b.body_text().await.contains("Application game_uno"));
    b.click_button("Delete application").await;
    b.client.accept_alert().await.expect("confirming the deletion");
    b.wait_for_text("Deleted the application game_uno.", WAIT).await;
    assert!(b.body_text().await.contains("No applications yet"));

    // A missing application: a clear error page, in the portal's frame.
    b.goto(&server.admin_url("/admin/applications/no-such-app")).await;
    b.wait_for_text("Application not found.", WAIT).await;
    assert!(b.body_text().await.contains("404"));
    b.screenshot("not-found").await;

    // Keyboard alone: Tab to the Roblox Kit in the side bar, Enter opens it.
    b.goto(&server.admin_url("/admin/elements")).await;
    b.wait_for_text("Deploy a new Element", WAIT).await;
    let mut reached = false;
    for _ in 0..20 {
        b.tab().await;
        if b.active_element_text().await.contains("roblox-kit") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab reaches the Element in the side bar");
    b.press_key(Key::Enter).await;
    b.wait_for_text("Save attributes and redeploy", WAIT).await;
    assert!(b.url().await.ends_with("/admin/elements/roblox-kit"));
    b.close().await;
}

/// A session of the portal over plain HTTP (no browser): its cookie header
/// and the CSRF token of its forms.
async fn http_session(server: &Server, client: &reqwest::Client) -> (String, String) {
    let page = client.get(server.admin_url("/admin/login")).send().await.unwrap();
    let login_cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the login form's cookie")
        .to_owned();
    let body = page.text().await.unwrap();
    let login_csrf = csrf_of(&body);
    let response = client
        .post(server.admin_url("/admin/login"))
        .header("cookie", &login_cookie)
        .form(&[
            ("login", "root"),
            ("password", ROOT_PASSWORD),
            ("csrf", login_csrf.as_str()),
            ("next", "/admin/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("elements_admin="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let home = client
        .get(server.admin_url("/admin/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&home.text().await.unwrap());
    (session, csrf)
}

fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Names and ids that need escaping (a file name with a space and a `#`, an
/// id with a newline) give pages and redirects, never a broken link or a
/// failed response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_and_ids_get_pages_not_crashes() {
    let dirs = Dirs::new();
    dirs.deploy_bytes("odd name#1", b"not a component");
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (session, csrf) = http_session(&server, &client).await;
    let get = |path: &str| {
        client
            .get(server.admin_url(path))
            .header("cookie", &session)
            .send()
    };

    let list = get("/admin/elements").await.unwrap();
    assert_eq!(list.status(), 200);
    let list = list.text().await.unwrap();
    assert!(list.contains("href=\"/admin/elements/odd%20name%231\""), "{list}");
    let page = get("/admin/elements/odd%20name%231").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("FAILED"));

    let switched = client
        .post(server.admin_url("/admin/elements/odd%20name%231/enabled"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("enabled", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 303);
    assert_eq!(
        switched.headers()["location"].to_str().unwrap(),
        "/admin/elements/odd%20name%231"
    );

    let odd = client
        .post(server.admin_url("/admin/users/%0A%22x/level"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("level", "USER")])
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), 303);
    let location = odd.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/admin/users/%0A%22x");
    let shown = get(&location).await.unwrap();
    assert_eq!(shown.status(), 404);
    assert!(shown.text().await.unwrap().contains("User not found."));

    // An upload without a session goes to the login page, unread, and the
    // answer closes the connection so no client reuses it.
    let upload = reqwest::multipart::Form::new()
        .text("name", "x")
        .part("component", reqwest::multipart::Part::bytes(b"\0asm".to_vec()));
    let refused = client
        .post(server.admin_url("/admin/elements"))
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 303);
    assert!(
        refused.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/admin/login?next=")
    );
    assert_eq!(refused.headers()["connection"], "close");
}

/// The page title of the Element's attack page once its script has tried
/// to read the portal: what each fetch got, by path.
async fn attack_outcome(b: &mut Browser) -> serde_json::Map<String, Value> {
    let started = std::time::Instant::now();
    loop {
        let title = b
            .script("return document.title;", vec![], "reading the title")
            .await;
        if let Some(json) = title.as_str().and_then(|t| t.strip_prefix("read:")) {
            let outcome: Value = serde_json::from_str(json).expect("the outcome as JSON");
            return outcome.as_object().cloned().expect("an object");
        }
        if started.elapsed() > WAIT {
            b.screenshot("attack-timeout").await;
            panic!("the attack page never recorded its outcome: {title}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Origin separation (issue 11): a superuser is logged in to the portal and
/// opens a page an Element serves (public listener, same host, another
/// port: same-site for the browser, so its SameSite=Strict cookie goes
/// along). The page's script can't read any portal page or the admin API,
/// and its cross-origin form posts (without a token, and even with the
/// session's real CSRF token) are refused: nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_page_can_neither_read_the_portal_nor_post_its_forms() {
    let dirs = Dirs::new();
    dirs.deploy("evil", "misbehave", "");
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    b.goto(&server.admin_url("/admin/applications")).await;
    b.wait_for_text("Create application", WAIT).await;
    let csrf = b
        .script(
            "return document.querySelector('input[name=csrf]').value;",
            vec![],
            "reading the CSRF token",
        )
        .await;
    let csrf = csrf.as_str().expect("a CSRF token").to_owned();
    assert!(!csrf.is_empty());
    let session = b
        .client
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "elements_admin")
        .expect("the portal session cookie")
        .value()
        .to_owned();

    // The Element tries to overwrite the portal's cookies: the server drops
    // those, its own arrive.
    b.goto(&server.url("/app/rest/evil/cookies")).await;
    b.wait_for_text("cookies", WAIT).await;
    // WebDriver lists the cookies the current page would send: the
    // portal's (Path=/admin) and the Element's (Path=/), ports aside.
    b.goto(&server.admin_url("/admin/applications")).await;
    b.wait_for_text("Create application", WAIT).await;
    let cookies = b.client.get_all_cookies().await.unwrap();
    let value_of = |name: &str| {
        cookies
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    };
    assert_eq!(value_of("theme").as_deref(), Some("dark"), "{cookies:?}");
    assert_eq!(value_of("elements_admin"), Some(session), "{cookies:?}");
    assert!(
        cookies.iter().all(|c| !c.value().contains("forged")),
        "{cookies:?}"
    );

    // Reading: every fetch with the operator's cookies is blocked.
    let admin = server.admin_url("");
    let attack = server.url(&format!("/app/rest/evil/attack?admin={admin}"));
    b.goto(&attack).await;
    let outcome = attack_outcome(&mut b).await;
    b.screenshot("attack-read").await;
    assert_eq!(outcome.len(), 4, "{outcome:?}");
    for (path, got) in &outcome {
        assert!(
            got.as_str().is_some_and(|g| g.starts_with("blocked:")),
            "the Element's page read {path}: {got}"
        );
    }

    // Posting: a forged form without the token, then with the stolen one.
    for token in ["", csrf.as_str()] {
        b.goto(&format!("{attack}&post=1&csrf={token}")).await;
        b.wait_for_text("This form is not from your current portal session", WAIT)
            .await;
        assert!(
            b.url()
                .await
                .starts_with(&server.admin_url("/admin/applications")),
            "{}",
            b.url().await
        );
        b.screenshot("attack-post-refused").await;
    }

    // Nothing was created, seen through the API and the portal, and the
    // operator is still logged in.
    let root = root_secret(&server).await;
    let apps: Value = server
        .client
        .get(server.url("/api/rest/application"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(apps["total"], 0, "no forged application: {apps}");
    b.goto(&server.admin_url("/admin/applications")).await;
    b.wait_for_text("Create application", WAIT).await;
    assert!(!b.body_text().await.contains("forged_by_element"));
    b.close().await;
}

/// An Element's `Set-Cookie` for any of the portal's cookies (any case,
/// `__Host-`/`__Secure-` forms) never reaches the client, and the Element's
/// log says so; its other cookies pass.
#[tokio::test]
async fn an_element_cannot_set_the_portals_cookies() {
    let dirs = Dirs::new();
    dirs.deploy("evil", "misbehave", "");
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let response = server.get("/app/rest/evil/cookies").await;
    assert_eq!(response.status(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies, ["theme=dark; Path=/", "session=abc123; HttpOnly"]);

    let root = root_secret(&server).await;
    let logs: Value = server
        .client
        .get(server.admin_url("/api/rest/elements/deployment/evil/logs"))
        .bearer_auth(&root)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dropped: Vec<&str> = logs
        .as_array()
        .expect("log lines")
        .iter()
        .filter(|l| l["level"] == "WARN")
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.contains("belongs to the management portal"))
        .collect();
    assert_eq!(dropped.len(), 4, "{logs}");
    for name in [
        "\"elements_admin\"",
        "\"__Host-elements_admin\"",
        "\"Elements_Admin_Flash\"",
        "\"__Secure-elements_admin_login\"",
    ] {
        assert!(dropped.iter().any(|m| m.contains(name)), "{name}: {dropped:?}");
    }
    assert!(!dropped.iter().any(|m| m.contains("forged")), "{dropped:?}");
}

/// Grants in the portal: requested and approved side by side, powerful ones
/// flagged, approving deploys the Element, revoking stops it; the Services
/// page changes the SMTP settings, the password staying write-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_service_settings_are_managed_in_the_portal() {
    let dirs = Dirs::new();
    dirs.deploy(
        "asks",
        "hostile",
        "grants = [\"identity.scheme:hostile.player\", \"identity.session\"]\n",
    );
    let server = Server::start_with(&dirs, &[], support::ROOT_ENV, None);
    let mut b = Browser::start_named("grants").await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Elements runtime version", WAIT).await;

    b.goto(&server.admin_url("/admin/elements/asks")).await;
    b.wait_for_text("Requested and approved grants", WAIT).await;
    assert_eq!(b.text_of("#status").await, "FAILED");
    let session_row = "tr[data-grant='identity.session']";
    assert!(
        b.text_of(session_row).await.contains("powerful"),
        "identity.session is flagged"
    );
    assert!(
        !b.text_of("tr[data-grant='identity.scheme:hostile.player']")
            .await
            .contains("powerful")
    );
    assert!(
        unlabelled_controls(&b).await.is_empty(),
        "{:?}",
        unlabelled_controls(&b).await
    );
    scroll_to(&b, "#grants-heading").await;
    b.screenshot("grants-requested").await;
    for grant in ["identity.session", "identity.scheme:hostile.player"] {
        b.find_css(&format!("tr[data-grant='{grant}'] input[type=checkbox]"))
            .await
            .click()
            .await
            .expect("ticking a grant");
    }
    b.click_button("Save grants and redeploy").await;
    b.wait_for_text("Saved the grants; asks is serving version 1.", WAIT)
        .await;
    assert_eq!(b.text_of("#status").await, "LOADED");
    let (status, _) = support::request(&server, "POST", "/app/rest/asks/player/1", None, None).await;
    assert_eq!(status, 200);
    scroll_to(&b, "#grants-heading").await;
    b.screenshot("grants-approved").await;

    // Revoking one stops the Element.
    b.find_css(&format!("{session_row} input[type=checkbox]"))
        .await
        .click()
        .await
        .expect("unticking a grant");
    b.click_button("Save grants and redeploy").await;
    b.wait_for_text("but the deploy failed", WAIT).await;
    b.wait_for_text("Nothing is serving it.", WAIT).await;
    let (status, _) = support::request(&server, "POST", "/app/rest/asks/player/1", None, None).await;
    assert_eq!(status, 404);
    // A malformed grant is refused with the reason.
    b.fill("Approve another grant", "root").await;
    b.click_button("Save grants and redeploy").await;
    b.wait_for_text("invalid grant \"root\"", WAIT).await;

    // Services: SMTP settings, the password write-only.
    b.goto(&server.admin_url("/admin/services")).await;
    b.wait_for_text("Mail (SMTP)", WAIT).await;
    assert_eq!(b.text_of("#mail-source").await, "the configuration");
    assert!(
        unlabelled_controls(&b).await.is_empty(),
        "{:?}",
        unlabelled_controls(&b).await
    );
    b.fill("SMTP host", "smtp.example.test").await;
    b.fill("User", "game").await;
    b.fill("Password", "smtp-pass-9f3k").await;
    b.fill("Default sender", "Game <noreply@game.test>").await;
    b.click_button("Save mail settings").await;
    b.wait_for_text("Saved the mail settings", WAIT).await;
    assert_eq!(b.text_of("#mail-source").await, "this portal");
    assert_eq!(b.text_of("#password-state").await, "a password is set");
    let page = b
        .script(
            "return document.documentElement.outerHTML;",
            vec![],
            "reading the page",
        )
        .await;
    assert!(
        !page.as_str().unwrap().contains("smtp-pass-9f3k"),
        "the password is shown"
    );
    b.screenshot("services-saved").await;
    // A bad sender is refused; nothing changes.
    b.fill("Default sender", "not an address").await;
    b.click_button("Save mail settings").await;
    b.wait_for_text("from is not an email address", WAIT).await;
    let root = root_secret(&server).await;
    let (_, settings) = support::admin_request(&server, "GET", "/api/rest/services", Some(&root), None).await;
    assert_eq!(settings["mail"]["from"], "Game <noreply@game.test>", "{settings}");
    assert!(!settings.to_string().contains("smtp-pass-9f3k"));
    b.click_button("Use the configuration file's mail settings").await;
    b.wait_for_text("are the configuration file's again", WAIT).await;
    assert_eq!(b.text_of("#mail-source").await, "the configuration");
    b.close().await;
}

/// Auth schemes: root registers an OIDC issuer with the form and an OAuth2
/// provider as JSON; the issuer then logs players in; a scheme that can't
/// work is refused with the reason; the OAuth2 provider's stored key never
/// shows; deleting asks first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_registers_and_deletes_auth_schemes() {
    use support::providers::{self, OAUTH2_API_KEY, OIDC_ISSUER, Stub};
    let stub = Stub::start().await;
    let dirs = Dirs::new();
    let server = support::root_server(&dirs);
    let mut b = Browser::start().await;
    log_in(&mut b, &server, "root", ROOT_PASSWORD).await;
    b.wait_for_text("Logged in as root.", WAIT).await;
    b.click_link("Auth schemes").await;
    b.wait_for_text("Register an OIDC issuer", WAIT).await;
    assert_eq!(unlabelled_controls(&b).await, Vec::<Value>::new());

    // Audiences that are only blanks: the server refuses, and says why.
    b.fill("Name", "example-id").await;
    b.fill("Issuer", OIDC_ISSUER).await;
    b.fill("Audiences", " , ").await;
    b.fill(
        "Discovery URL",
        &stub.url("/oidc/.well-known/openid-configuration"),
    )
    .await;
    b.click_button("Register the issuer").await;
    b.wait_for_text("`audiences` must name", WAIT).await;

    b.fill("Name", "example-id").await;
    b.fill("Issuer", OIDC_ISSUER).await;
    b.fill("Audiences", "game-client").await;
    b.fill(
        "Discovery URL",
        &stub.url("/oidc/.well-known/openid-configuration"),
    )
    .await;
    b.click_button("Register the issuer").await;
    b.wait_for_text("Registered the OIDC scheme example-id.", WAIT)
        .await;
    assert!(b.text_of("table").await.contains(OIDC_ISSUER));
    let jwt = providers::id_token(
        "google-test",
        OIDC_ISSUER,
        "game-client",
        "portal-player",
        json!({}),
    );
    let (status, body) = support::request(
        &server,
        "POST",
        "/api/rest/auth/oidc",
        None,
        Some(json!({"jwt": jwt})),
    )
    .await;
    assert_eq!(
        status, 200,
        "the issuer registered in the portal logs players in: {body}"
    );

    let scheme = json!({
        "name": "example-oauth",
        "validationUrl": stub.url("/oauth2/validate"),
        "method": "GET",
        "headers": [{"key": "x-api-key", "value": OAUTH2_API_KEY}],
        "params": [{"key": "access_token", "fromClient": true}],
        "responseIdMapping": "player_id",
    });
    b.fill(
        "Scheme (JSON, as POST /api/rest/auth_scheme/oauth2 takes it)",
        &scheme.to_string(),
    )
    .await;
    b.click_button("Register the provider").await;
    b.wait_for_text("Registered the OAuth2 scheme example-oauth.", WAIT)
        .await;
    assert!(!b.body_text().await.contains(OAUTH2_API_KEY));
    let html = b
        .script(
            "return document.documentElement.outerHTML;",
            vec![],
            "reading the page",
        )
        .await;
    assert!(
        !html.to_string().contains(OAUTH2_API_KEY),
        "the stored key is in the page"
    );
    b.screenshot("auth-schemes").await;

    // Deleting asks first; declining keeps the scheme.
    b.click_button("Delete the OIDC scheme example-id").await;
    b.client.dismiss_alert().await.expect("declining the deletion");
    assert!(b.text_of("table").await.contains(OIDC_ISSUER));
    b.click_button("Delete the OIDC scheme example-id").await;
    b.client.accept_alert().await.expect("confirming the deletion");
    b.wait_for_text("Deleted the auth scheme.", WAIT).await;
    assert!(b.body_text().await.contains("No OIDC issuer registered."));
    b.close().await;
}
