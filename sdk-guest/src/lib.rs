//! Write Elements — WebAssembly components served by the Elements runtime —
//! in Rust.
//!
//! An Element is an HTTP handler: the runtime mounts it under a prefix and
//! hands it every request below that prefix. With this crate you write a
//! [`Router`] of handlers and export it with [`export_element!`]; the SDK
//! deals with the component model, WASI HTTP streams and host bindings.
//!
//! # Hello, Element
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! elements-sdk = { path = "../sdk-guest" }
//! serde_json = "1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! fn router() -> Router {
//!     Router::new()
//!         .get("/hello", |_req: Request| Response::json(&json!({"hello": "world"})))
//!         .post("/echo", echo)
//! }
//!
//! fn echo(req: Request) -> Result<Response> {
//!     let body: serde_json::Value = req.json()?; // malformed JSON -> 400
//!     info!("echoing {body}");
//!     Ok(Response::json(&body))
//! }
//!
//! elements_sdk::export_element!(router);
//! ```
//!
//! Build it into a component with
//!
//! ```text
//! rustup target add wasm32-wasip2     # once
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! which writes `target/wasm32-wasip2/release/<crate>.wasm`, ready to deploy.
//!
//! # Requests and paths
//!
//! A handler sees the path *below* the Element's mount point: with the Element
//! mounted at `hello`, a request for `/app/rest/hello/echo?x=1` arrives with
//! [`Request::path`] `/echo` and [`Request::query_string`] `x=1`. The body
//! is fully buffered: [`Request::body`], [`Request::text`] and
//! [`Request::json`] never block.
//!
//! # Routing
//!
//! Patterns match exactly, segment by segment; `{name}` captures one segment
//! ([`Request::param`]) and a final `{*name}` captures the rest of the path.
//! An unknown path gets a 404, a known path with the wrong method a 405 with
//! an `Allow` header. See [`Router`].
//!
//! # Responses and errors
//!
//! A handler returns anything that implements [`IntoResponse`]: a
//! [`Response`], a `serde_json::Value`, an [`Error`], or a [`Result`] of
//! those. Errors render as the project-wide JSON error body
//! `{"code": "...", "message": "..."}` with their status:
//!
//! ```
//! use elements_sdk::prelude::*;
//!
//! fn find(req: Request) -> Result<Response> {
//!     let id: u32 = req
//!         .param("id")
//!         .and_then(|id| id.parse().ok())
//!         .ok_or_else(|| Error::bad_request("id must be a number"))?;
//!     if id != 1 {
//!         return Err(Error::not_found(format!("no user {id}")));
//!     }
//!     Ok(Response::json(&json!({"id": id, "name": "ada"})))
//! }
//!
//! let router = Router::new().get("/users/{id}", find);
//! let res = router.handle(Request::new(Method::Get, "/users/2"));
//! assert_eq!(res.status(), 404);
//! assert_eq!(res.body(), br#"{"code":"NOT_FOUND","message":"no user 2"}"#);
//! ```
//!
//! A panic in a handler traps the instance: the runtime answers 500 and logs
//! the panic message. Prefer returning [`Error::internal`] for expected
//! failures.
//!
//! # Attributes
//!
//! Configuration comes from [`attributes`]: string values declared with
//! defaults in the Element's manifest and overridden by operators.
//!
//! ```no_run
//! use elements_sdk::prelude::*;
//!
//! fn limit() -> Result<u32> {
//!     Ok(attributes::parse("page-size")?.unwrap_or(20)) // bad value -> 500 naming it
//! }
//! ```
//!
//! # Host services
//!
//! * [`documents`]: JSON documents in collections private to the Element,
//!   with filters, sorting, atomic find-and-modify, compare-and-set on
//!   `_version`, unique indexes and expiry.
//! * [`events`]: publish named JSON events; subscribe with
//!   `export_element!(router, events = handler)` (see [`export_element!`]).
//! * [`mail`]: email over the operator's SMTP server.
//! * [`http`]: outbound HTTP requests to the hosts the Element is allowed to
//!   reach.
//! * [`identity`]: users, identities, profiles and sessions (the accounts of
//!   `/api/rest`), and who is calling.
//!
//! Each reports failures as an [`Error`] (or an error type that converts
//! into one), so `?` works in handlers.
//!
//! # Logging
//!
//! [`trace!`], [`debug!`], [`info!`], [`warn!`] and [`error!`] take `format!`
//! arguments and write to the server log (tagged with the Element and request
//! id) and to the Element's log buffer, readable through the admin API. Lines
//! the server would drop are not even formatted. `println!` and `eprintln!`
//! lines are logged too, at info and warn, and a panic is logged as one error
//! line naming the file and line that raised it. The SDK's `stdio` feature
//! (on by default) does this by standing in for the C library's `write`, so
//! the component links none of WASI's stdio: seventeen imports fewer, which
//! wasmtime would link again for every instance. Without it, std writes to
//! WASI's stdout and stderr, which the runtime logs the same way.
//!
//! # Isolation: `fresh` and `reuse`
//!
//! By default (`fresh`) every request runs in a new instance of the
//! component: statics, `OnceLock`s and the heap start from scratch each time,
//! so nothing leaks between requests, and the router is rebuilt per request
//! (keep its construction cheap). With `reuse` the runtime serves many
//! sequential requests from one instance: statics and caches **persist**
//! between requests (which is faster and lets you cache), so never keep
//! per-request or per-user state in globals. Write Elements that are correct
//! under both.
//!
//! # Memory
//!
//! The SDK sets the Element's `#[global_allocator]`: blocks of up to 2 KiB
//! come from free lists of their size class (a request's strings, headers
//! and JSON cost a few dozen instructions each to allocate and free instead
//! of the hundreds wasi-libc's `malloc` takes), larger ones from the
//! standard allocator. Memory a size class once held stays with it. To use
//! an allocator of your own, turn the SDK's default features off and keep
//! `stdio` (see [Logging](#logging)) and `environ` (see
//! [Environment variables](#environment-variables)):
//!
//! ```toml
//! elements-sdk = { path = "../sdk-guest", default-features = false, features = ["stdio", "environ"] }
//! ```
//!
//! # Environment variables
//!
//! The runtime gives an Element no environment variables: its settings are
//! [`attributes`]. `std::env::var` finds only what the Element set itself
//! with `std::env::set_var`. The SDK's `environ` feature (on by default)
//! does this by standing in for the C library's `getenv`, `setenv` and
//! `unsetenv`, so the component doesn't import WASI's environment, which
//! wasmtime would link again for every instance.
//!
//! # Testing
//!
//! Routers and handlers are plain Rust: build a [`Request`] with
//! [`Request::new`] and call [`Router::handle`] in ordinary `#[test]`s on your
//! machine. Functions that call the host ([`documents`], [`events::publish`],
//! [`mail::send`], [`http`] requests, [`identity`]) need the runtime: in a
//! native test they fail with an [`Error`] ("host call outside the Elements
//! runtime; test with elements-test"), attributes have no value and log
//! lines go to stderr. To test them, load the built component into the real
//! runtime with the `elements-test` crate (see `examples/README.md`).

#![warn(missing_docs)]

// The Element's allocator (see allocator.rs). Turn the `allocator` feature
// off (default features) to bring your own `#[global_allocator]`.
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
mod allocator;
#[cfg(all(
    feature = "allocator",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: allocator::SmallBlocks = allocator::SmallBlocks::new();

pub mod attributes;
pub mod documents;
mod error;
pub mod events;
pub mod http;
pub mod identity;
pub mod log;
pub mod mail;
pub mod realtime;
mod request;
mod response;
mod router;

pub use error::{Error, Result};
pub use request::{Method, Request};
pub use response::{IntoResponse, Response};
pub use router::Router;
pub use serde_json::json;

/// Everything an Element usually needs, in one import.
///
/// ```
/// use elements_sdk::prelude::*;
///
/// let r: Result<Response> = Ok(Response::json(&json!({"ok": true})));
/// assert_eq!(r.into_response().status(), 200);
/// ```
pub mod prelude {
    pub use crate::documents::{self, FindAndModify};
    pub use crate::events::{self, Event};
    pub use crate::{
        Error, IntoResponse, Method, Request, Response, Result, Router, debug, error, info, json, trace, warn,
    };
    pub use crate::{attributes, identity, mail, realtime};
}

/// Exports a router as the Element's HTTP handler, and optionally a function
/// as its event handler.
///
/// Takes a function (or any expression callable as `FnOnce() -> Router`)
/// that builds the [`Router`]. The router is built on the first request an
/// instance serves and kept for the instance's life. Use the macro exactly
/// once, at the top level of the Element's `cdylib` crate.
///
/// The router answers through the `elements:platform/request-handler`
/// export: the runtime passes the whole request in one call and takes the
/// whole response back, without wasi:http's resource calls. (Components
/// written without the SDK export `wasi:http/incoming-handler` instead;
/// the runtime serves both.)
///
/// ```no_run
/// use elements_sdk::prelude::*;
///
/// fn router() -> Router {
///     Router::new().get("/ping", |_req: Request| Response::text("pong"))
/// }
///
/// elements_sdk::export_element!(router);
/// ```
///
/// # Subscribing to events
///
/// An Element that subscribes to events (its manifest lists names under
/// `[events] subscribe`) also passes `events = handler`, a function taking an
/// [`Event`](events::Event) and returning `()`, `Result<(), String>` or
/// `Result<()>` (any `Result<(), E: Display>`). It runs once per matching
/// event, in a fresh instance; an `Err` is logged by the host and never
/// reaches the publisher.
///
/// ```no_run
/// use elements_sdk::prelude::*;
///
/// fn router() -> Router {
///     Router::new().get("/ping", |_req: Request| Response::text("pong"))
/// }
///
/// fn on_event(event: Event) -> Result<()> {
///     info!("got {} with {}", event.name, event.payload);
///     Ok(())
/// }
///
/// elements_sdk::export_element!(router, events = on_event);
/// ```
///
/// Only an Element that passes `events = ...` exports the event handler: the
/// runtime refuses a manifest that subscribes without it, and an Element
/// that exports it without subscriptions is simply never called.
///
/// # Running matches
///
/// An Element that runs matches ([`realtime::create_match`]) passes
/// `matches = Type`, a type implementing
/// [`MatchHandler`](realtime::MatchHandler), after `events = ...` when it
/// has both. See [`realtime`] for an example.
#[macro_export]
macro_rules! export_element {
    ($router:expr, events = $handler:expr, matches = $matches:ty $(,)?) => {
        $crate::__export_router!($router);
        $crate::__export_events!($handler);
        $crate::__export_matches!($matches);
    };
    ($router:expr, events = $handler:expr $(,)?) => {
        $crate::__export_router!($router);
        $crate::__export_events!($handler);
    };
    ($router:expr, matches = $matches:ty $(,)?) => {
        $crate::__export_router!($router);
        $crate::__export_matches!($matches);
    };
    ($router:expr $(,)?) => {
        $crate::__export_router!($router);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_router {
    ($router:expr) => {
        const _: () = {
            struct __ElementsHandler;

            static ROUTER: ::std::sync::OnceLock<$crate::Router> = ::std::sync::OnceLock::new();

            // The whole request in, the whole response out: one call.
            impl $crate::__private::RequestGuest for __ElementsHandler {
                fn handle(
                    request: ::std::vec::Vec<u8>,
                    body_start: u32,
                ) -> $crate::__private::ResponseRecord {
                    $crate::__private::run(|| {
                        $crate::__private::serve_message(ROUTER.get_or_init($router), request, body_start)
                    })
                }
            }

            $crate::__private::export_request_handler!(
                __ElementsHandler with_types_in $crate::__private::handler
            );
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_events {
    ($handler:expr) => {
        const _: () = {
            struct __ElementsEventHandler;

            impl $crate::__private::EventGuest for __ElementsEventHandler {
                fn handle_event(
                    name: ::std::string::String,
                    payload: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::run(|| $crate::__private::dispatch_event($handler, name, payload))
                }
            }

            $crate::__private::export_event_handler!(
                __ElementsEventHandler with_types_in $crate::__private::subscriber
            );
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_matches {
    ($matches:ty) => {
        const _: () = {
            struct __ElementsMatchHandler;

            impl $crate::__private::MatchGuest for __ElementsMatchHandler {
                fn join(
                    match_id: ::std::string::String,
                    player: $crate::__private::MatchPresence,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::run(|| {
                        <$matches as $crate::realtime::MatchHandler>::join(
                            &match_id,
                            &$crate::__private::player(player),
                        )
                    })
                }

                fn leave(match_id: ::std::string::String, player: $crate::__private::MatchPresence) {
                    $crate::__private::run(|| {
                        <$matches as $crate::realtime::MatchHandler>::leave(
                            &match_id,
                            &$crate::__private::player(player),
                        )
                    })
                }

                fn data(
                    match_id: ::std::string::String,
                    sender: $crate::__private::MatchPresence,
                    op_code: i64,
                    data: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::run(|| {
                        <$matches as $crate::realtime::MatchHandler>::data(
                            &match_id,
                            &$crate::__private::player(sender),
                            op_code,
                            &data,
                        )
                    })
                }
            }

            $crate::__private::export_match_handler!(
                __ElementsMatchHandler with_types_in $crate::__private::matcher
            );
        };
    };
}

#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
pub mod native;

/// The message of every host call refused outside the runtime.
pub(crate) const OUTSIDE_RUNTIME: &str = "host call outside the Elements runtime; test with elements-test";
// The Element's environment variables, without wasi-libc's imports (see
// environ.rs).
#[cfg(feature = "environ")]
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
mod environ;
mod serve;
// stdout, stderr and panics into the Element's log (see stdio.rs).
#[cfg(feature = "stdio")]
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
mod stdio;

/// Implementation details used by the SDK's macros. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::events::dispatch as dispatch_event;
    pub use crate::serve::serve_message;
    #[cfg(all(feature = "stdio", target_arch = "wasm32", not(target_feature = "atomics")))]
    pub use crate::stdio::run;

    /// Runs one call of an export (stdio's set-up where it is compiled in).
    #[cfg(not(all(feature = "stdio", target_arch = "wasm32", not(target_feature = "atomics"))))]
    pub fn run<R>(call: impl FnOnce() -> R) -> R {
        call()
    }
    pub use subscriber::exports::elements::platform::event_handler::Guest as EventGuest;
    pub use wasip2;

    /// The host services (imports only).
    #[cfg(target_arch = "wasm32")]
    #[allow(missing_docs, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            world: "imports",
            path: "../wit",
        });
    }

    /// Outside the runtime (a native `cargo test`), stand-ins that fail
    /// every host call with an error instead of aborting the test binary.
    #[cfg(not(target_arch = "wasm32"))]
    pub use crate::native as bindings;

    /// The `event-handler` export. Its component-type section is emitted only
    /// inside the export macro, so an Element that does not invoke it (no
    /// `events = ...`) does not export `event-handler`.
    #[allow(missing_docs, clippy::all)]
    pub mod subscriber {
        wit_bindgen::generate!({
            world: "subscriber",
            path: "../wit",
            pub_export_macro: true,
            export_macro_name: "__elements_export_event_handler",
            default_bindings_module: "$crate::__private::subscriber",
        });
    }

    pub use subscriber::__elements_export_event_handler as export_event_handler;

    /// The one-call `request-handler` export, emitted by the export macro.
    #[allow(missing_docs, clippy::all)]
    pub mod handler {
        wit_bindgen::generate!({
            world: "request-host",
            path: "../wit",
            pub_export_macro: true,
            export_macro_name: "__elements_export_request_handler",
            default_bindings_module: "$crate::__private::handler",
        });
    }

    pub use handler::__elements_export_request_handler as export_request_handler;
    pub use handler::exports::elements::platform::request_handler::{
        Guest as RequestGuest, Response as ResponseRecord,
    };

    /// The `match-handler` export, emitted only by `matches = ...`, like
    /// `subscriber`.
    #[allow(missing_docs, clippy::all)]
    pub mod matcher {
        wit_bindgen::generate!({
            world: "match-host",
            path: "../wit",
            pub_export_macro: true,
            export_macro_name: "__elements_export_match_handler",
            default_bindings_module: "$crate::__private::matcher",
        });
    }

    pub use matcher::__elements_export_match_handler as export_match_handler;
    pub use matcher::exports::elements::platform::match_handler::{
        Guest as MatchGuest, Presence as MatchPresence,
    };

    /// The SDK's player from the export's presence.
    pub fn player(p: MatchPresence) -> crate::realtime::Player {
        crate::realtime::Player {
            user_id: p.user_id,
            session_id: p.session_id,
            username: p.username,
        }
    }
}
