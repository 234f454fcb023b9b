//! Logging to the server's structured log and the Element's log buffer.
//!
//! Usually you use the macros [`trace!`](crate::trace), [`debug!`](crate::debug),
//! [`info!`](crate::info), [`warn!`](crate::warn) and [`error!`](crate::error),
//! which take `format!` arguments and skip formatting when the host would
//! drop the line anyway.
//!
//! These functions call the host, so the examples here are compiled but not
//! run.

use std::fmt;

use crate::__private::bindings::elements::platform::log as wit;

/// Severity of a log line.
///
/// ```
/// use elements_sdk::log::Level;
/// assert!(Level::Warn > Level::Info);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the Element handled.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    fn to_wit(self) -> wit::Level {
        match self {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        }
    }
}

/// Writes one log line at `level`. The host drops lines below its configured
/// level and truncates very long ones.
///
/// ```no_run
/// use elements_sdk::log::{self, Level};
/// log::write(Level::Info, "cache warmed");
/// ```
pub fn write(level: Level, message: &str) {
    wit::write(level.to_wit(), message);
}

/// Whether a line at `level` would be kept.
///
/// ```no_run
/// use elements_sdk::log::{self, Level};
/// if log::enabled(Level::Debug) {
///     // build an expensive dump only when it will be kept
/// }
/// ```
pub fn enabled(level: Level) -> bool {
    wit::enabled(level.to_wit())
}

#[doc(hidden)]
pub fn __log(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    match args.as_str() {
        Some(s) => write(level, s),
        None => write(level, &fmt::format(args)),
    }
}

/// Logs at [`Level::Trace`] with `format!` arguments.
///
/// ```no_run
/// elements_sdk::trace!("parsed {} items", 3);
/// ```
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::__log($crate::log::Level::Trace, ::core::format_args!($($arg)+)) };
}

/// Logs at [`Level::Debug`] with `format!` arguments.
///
/// ```no_run
/// let id = 7;
/// elements_sdk::debug!("loading user {id}");
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::__log($crate::log::Level::Debug, ::core::format_args!($($arg)+)) };
}

/// Logs at [`Level::Info`] with `format!` arguments.
///
/// ```no_run
/// elements_sdk::info!("echoing {} bytes", 12);
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::__log($crate::log::Level::Info, ::core::format_args!($($arg)+)) };
}

/// Logs at [`Level::Warn`] with `format!` arguments.
///
/// ```no_run
/// elements_sdk::warn!("attribute {} missing, using default", "greeting");
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::__log($crate::log::Level::Warn, ::core::format_args!($($arg)+)) };
}

/// Logs at [`Level::Error`] with `format!` arguments.
///
/// ```no_run
/// let e = "timeout";
/// elements_sdk::error!("upstream failed: {e}");
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::__log($crate::log::Level::Error, ::core::format_args!($($arg)+)) };
}
