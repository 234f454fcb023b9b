//! The host services outside the runtime: what the SDK's host calls do in a
//! native `cargo test` of an Element crate.
//!
//! On `wasm32` the SDK calls the host through the component's imports. On any
//! other target there is no host: wit-bindgen's generated imports are
//! `unreachable!()` inside `extern "C"` functions, so the first host call
//! aborted the whole test binary (no summary, no other test's result). This
//! module stands in for the generated bindings with the same signatures and
//! answers every call with the service's own "can't do that" error naming
//! `elements-test`, which runs the Element in the real runtime instead. Calls
//! whose interface has no error keep a harmless meaning: no attribute has a
//! value, and log lines go to stderr, where the test runner shows them.

#[allow(missing_docs)]
pub mod elements {
    pub mod platform {
        pub mod log {
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum Level {
                Trace,
                Debug,
                Info,
                Warn,
                Error,
            }

            pub fn write(level: Level, message: &str) {
                eprintln!("[{level:?}] {message}");
            }

            pub fn enabled(_level: Level) -> bool {
                true
            }
        }

        pub mod attributes {
            pub fn get(_name: &str) -> Option<String> {
                None
            }

            pub fn list() -> Vec<(String, String)> {
                Vec::new()
            }
        }

        pub mod documents {
            use crate::OUTSIDE_RUNTIME as OUTSIDE;

            #[derive(Clone, Debug)]
            pub enum Error {
                Conflict(String),
                Invalid(String),
                Unavailable(String),
                Internal(String),
            }

            pub type Sort = Vec<(String, bool)>;

            #[derive(Clone, Debug)]
            pub struct Query {
                pub filter: String,
                pub sort: Sort,
                pub skip: Option<u64>,
                pub limit: Option<u64>,
            }

            #[derive(Clone, Debug)]
            pub struct ModifyOptions {
                pub sort: Sort,
                pub upsert: bool,
                pub return_before: bool,
            }

            fn outside<T>() -> Result<T, Error> {
                Err(Error::Unavailable(OUTSIDE.into()))
            }

            pub fn insert(_collection: &str, _document: &str) -> Result<String, Error> {
                outside()
            }
            pub fn get(_collection: &str, _id: &str) -> Result<Option<String>, Error> {
                outside()
            }
            pub fn find(_collection: &str, _query: &Query) -> Result<Vec<String>, Error> {
                outside()
            }
            pub fn count(_collection: &str, _filter: &str) -> Result<u64, Error> {
                outside()
            }
            pub fn update(
                _collection: &str,
                _id: &str,
                _update: &str,
                _expected_version: Option<i64>,
            ) -> Result<Option<String>, Error> {
                outside()
            }
            pub fn delete(
                _collection: &str,
                _id: &str,
                _expected_version: Option<i64>,
            ) -> Result<bool, Error> {
                outside()
            }
            pub fn find_one_and_update(
                _collection: &str,
                _filter: &str,
                _update: &str,
                _options: &ModifyOptions,
            ) -> Result<Option<String>, Error> {
                outside()
            }
            pub fn find_one_and_delete(
                _collection: &str,
                _filter: &str,
                _sort: &[(String, bool)],
            ) -> Result<Option<String>, Error> {
                outside()
            }
            pub fn delete_many(_collection: &str, _filter: &str) -> Result<u64, Error> {
                outside()
            }
            pub fn ensure_index(_collection: &str, _fields: &[String], _unique: bool) -> Result<(), Error> {
                outside()
            }
        }

        pub mod events {
            use crate::OUTSIDE_RUNTIME as OUTSIDE;

            #[derive(Clone, Debug)]
            pub enum Error {
                Forbidden(String),
                Invalid(String),
                LimitExceeded(String),
            }

            pub fn publish(_name: &str, _payload: &str) -> Result<(), Error> {
                Err(Error::Forbidden(OUTSIDE.into()))
            }
        }

        pub mod mail {
            use crate::OUTSIDE_RUNTIME as OUTSIDE;

            #[derive(Clone, Debug)]
            pub enum Error {
                NotConfigured,
                Invalid(String),
                SendFailed(String),
                Forbidden(String),
                LimitExceeded(String),
            }

            #[derive(Clone, Debug)]
            pub struct Message {
                pub to: Vec<String>,
                pub subject: String,
                pub html: Option<String>,
                pub text: Option<String>,
                pub from: Option<String>,
            }

            pub fn send(_message: &Message) -> Result<(), Error> {
                Err(Error::SendFailed(OUTSIDE.into()))
            }
        }

        pub mod realtime {
            use crate::OUTSIDE_RUNTIME as OUTSIDE;

            #[derive(Clone, Debug)]
            pub enum Error {
                Forbidden(String),
                Invalid(String),
                LimitExceeded(String),
                Unavailable(String),
            }

            #[derive(Clone, Debug)]
            pub struct Notification {
                pub subject: String,
                pub content: String,
                pub code: i32,
                pub persistent: bool,
            }

            fn outside<T>() -> Result<T, Error> {
                Err(Error::Unavailable(OUTSIDE.into()))
            }

            pub fn notify(_user_ids: &[String], _notification: &Notification) -> Result<(), Error> {
                outside()
            }

            pub fn send_to_room(_room: &str, _content: &str) -> Result<String, Error> {
                outside()
            }

            pub fn create_match() -> Result<String, Error> {
                outside()
            }

            pub fn send_match_data(
                _match_id: &str,
                _op_code: i64,
                _data: &[u8],
                _session_ids: Option<&[String]>,
            ) -> Result<(), Error> {
                outside()
            }
        }

        pub mod identity {
            use crate::OUTSIDE_RUNTIME as OUTSIDE;

            #[derive(Clone, Debug)]
            pub enum Error {
                NotFound(String),
                Conflict(String),
                Invalid(String),
                Forbidden(String),
                Unavailable(String),
                Internal(String),
            }

            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum Verification {
                Unverified,
                Pending,
                Verified,
            }

            pub(crate) fn outside<T>() -> Result<T, Error> {
                Err(Error::Unavailable(OUTSIDE.into()))
            }

            pub fn find_or_create_user(
                _scheme: &str,
                _id: &str,
                _username: Option<&str>,
            ) -> Result<(String, bool), Error> {
                outside()
            }
            pub fn user(_user_id: &str) -> Result<String, Error> {
                outside()
            }
            pub fn application(_name_or_id: &str) -> Result<Option<String>, Error> {
                outside()
            }
            pub fn find_or_create_profile(
                _user_id: &str,
                _application: &str,
            ) -> Result<(String, bool), Error> {
                outside()
            }
            pub fn update_profile(_profile_id: &str, _update: &str) -> Result<String, Error> {
                outside()
            }
            pub fn create_session(
                _user_id: &str,
                _profile_id: Option<&str>,
                _expiry_seconds: u64,
            ) -> Result<String, Error> {
                outside()
            }
            pub fn caller() -> Result<Option<String>, Error> {
                outside()
            }
            pub fn get_identity(_scheme: &str, _id: &str) -> Result<Option<String>, Error> {
                outside()
            }
            pub fn set_verification(
                _scheme: &str,
                _id: &str,
                _status: Verification,
            ) -> Result<String, Error> {
                outside()
            }
            pub fn link_email(_user_id: &str, _email: &str) -> Result<(), Error> {
                outside()
            }
        }

        pub mod credentials {
            use crate::OUTSIDE_RUNTIME as OUTSIDE;

            #[derive(Clone, Debug)]
            pub enum Error {
                InvalidCredentials,
                Unavailable(String),
                Internal(String),
            }

            pub fn caller() -> Result<Option<String>, Error> {
                Err(Error::Unavailable(OUTSIDE.into()))
            }
        }

        pub mod verification {
            pub use super::identity::Error;

            pub fn request_email(_email: &str) -> Result<String, Error> {
                super::identity::outside()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// Each host call answers an error naming the harness, and the test
    /// binary lives on to report it.
    #[test]
    fn host_calls_fail_with_an_error_outside_the_runtime() {
        let outside = |e: &Error| e.message().contains("outside the Elements runtime");
        let e = documents::collection("c").insert(&json!({})).unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(outside(&e), "{e:?}");
        let e: Error = identity::caller().unwrap_err().into();
        assert_eq!(e.status(), 503);
        assert!(outside(&e), "{e:?}");
        let e: Error = mail::send(&mail::Message::to("a@example.com").subject("s").text("t"))
            .unwrap_err()
            .into();
        assert!(outside(&e), "{e:?}");
        let e = events::publish("x.y", &json!({})).unwrap_err();
        assert!(outside(&e), "{e:?}");
        let e = crate::http::get("https://example.com/").unwrap_err();
        assert!(e.to_string().contains("outside the Elements runtime"), "{e}");
        assert_eq!(attributes::get("anything"), None);
        info!("a log line outside the runtime goes to stderr");
    }
}
