//! The browser-test support itself: a real headless chromium, driven by the
//! helpers in `support::browser`, against a small form page served here and
//! against the server's Swagger UI.

mod support;

use std::time::Duration;

use fantoccini::key::Key;
use support::browser::Browser;
use support::{Dirs, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);

/// A form with every kind of label the helpers support: `for`, a nested
/// input, a nested select; and a link and a button.
const FORM_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Smoke form</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { font: 16px sans-serif; margin: 2em; } label { display: block; margin: .5em 0; }</style>
</head><body>
<h1>Smoke form</h1>
<form action="/greet" method="get">
  <label for="name">Player name</label>
  <input id="name" name="name" value="placeholder text">
  <label>Team <input name="team"></label>
  <label>
    Role
    <select name="role"><option>Viewer</option><option>Operator</option><option>Root</option></select>
  </label>
  <button type="submit">Say hello</button>
</form>
<p><a href="/about">About this page</a></p>
</body></html>"#;

const ABOUT_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>About</title></head>
<body><h1 id="heading">About the smoke test</h1></body></html>"#;

/// Serves the form, its result page and an about page on loopback; the
/// result page echoes the query (decoded just enough for these values).
async fn serve_pages() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the page server");
    let addr = listener.local_addr().expect("page server address");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request);
                let target = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match target.split_once('?').unwrap_or((target, "")) {
                    ("/", _) => ("200 OK", FORM_PAGE.to_owned()),
                    ("/about", _) => ("200 OK", ABOUT_PAGE.to_owned()),
                    ("/greet", query) => ("200 OK", greeting(query)),
                    _ => ("404 Not Found", "<!doctype html><p>not found</p>".to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

fn greeting(query: &str) -> String {
    let field = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.replace('+', " "))
            .unwrap_or_default()
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><title>Hello</title></head><body>\
         <p id=\"greeting\">Hello, {} of {} ({})!</p></body></html>",
        field("name"),
        field("team"),
        field("role")
    )
}

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a PNG of a rendered page ({} bytes)",
        path.display(),
        bytes.len()
    );
}

#[tokio::test]
async fn fills_a_form_by_label_and_follows_links() {
    let base = serve_pages().await;
    let mut browser = Browser::start().await;

    browser.goto(&format!("{base}/")).await;
    browser.wait_for_text("Smoke form", WAIT).await;
    browser.fill("Player name", "Ada").await;
    browser.fill("Team", "Blue").await;
    browser.select("Role", "Operator").await;
    let form = browser.screenshot("filled form").await;
    assert_png(&form);
    assert!(
        form.ends_with("01-filled_form.png"),
        "numbered, file-safe name: {}",
        form.display()
    );

    browser.click_button("Say hello").await;
    // `fill` cleared the prefilled value rather than appending to it.
    browser
        .wait_for_text("Hello, Ada of Blue (Operator)!", WAIT)
        .await;
    assert_eq!(
        browser.text_of("#greeting").await,
        "Hello, Ada of Blue (Operator)!"
    );
    assert_png(&browser.screenshot("greeting").await);

    browser.goto(&format!("{base}/")).await;
    browser.click_link("About this page").await;
    browser.wait_for_text("About the smoke test", WAIT).await;
    assert_eq!(browser.text_of("#heading").await, "About the smoke test");
    assert!(browser.url().await.ends_with("/about"));
}

#[tokio::test]
async fn keyboard_alone_submits_the_form() {
    let base = serve_pages().await;
    let mut browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    browser.wait_for_text("Smoke form", WAIT).await;

    assert_eq!(browser.active_element_tag().await, "body");
    browser.tab().await;
    assert_eq!(browser.active_element_text().await, "Player name");
    browser.tab().await;
    assert_eq!(browser.active_element_text().await, "Team");
    let team = browser.active_element().await;
    team.send_keys("Red")
        .await
        .expect("typing into the focused field");
    browser.shift_tab().await;
    assert_eq!(browser.active_element_tag().await, "input");
    assert_eq!(browser.active_element_text().await, "Player name");
    for _ in 0..3 {
        browser.tab().await;
    }
    assert_eq!(browser.active_element_text().await, "Say hello");
    browser.press_key(Key::Enter).await;
    browser
        .wait_for_text("Hello, placeholder text of Red (Viewer)!", WAIT)
        .await;

    // A phone's width: the page reflows instead of scrolling sideways.
    browser.goto(&format!("{base}/")).await;
    browser.set_window_size(390, 844).await;
    let width = browser
        .script(
            "return document.documentElement.scrollWidth",
            vec![],
            "measuring the page",
        )
        .await;
    assert!(
        width.as_u64().is_some_and(|w| w <= 390),
        "page is {width} px wide at 390 px"
    );
    assert_png(&browser.screenshot("phone width").await);
}

/// The server's own pages render in the browser: Swagger UI builds the
/// page from the OpenAPI document with JavaScript, all served by the binary.
#[tokio::test]
async fn swagger_ui_renders_from_the_server() {
    let server = Server::start(&Dirs::new(), &[]);
    let mut browser = Browser::start().await;
    browser.goto(&server.url("/doc/swagger/")).await;
    browser.wait_for_text("Elements core API", WAIT).await;
    let shot = browser.screenshot("swagger").await;
    assert_png(&shot);
    assert!(shot.starts_with(browser.screenshot_dir()));
}
