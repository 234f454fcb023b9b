//! The bounded, per-Element log that operators read through the admin API:
//! the Element's own log calls, its stdout and stderr, and what the host says
//! about it (traps, timeouts, limit breaches).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How many lines an Element's buffer keeps; older lines are dropped first.
pub const CAPACITY: usize = 1000;
/// Longest message kept, in bytes; longer ones are cut at a char boundary.
pub const MAX_MESSAGE: usize = 4096;

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Very fine detail.
    Trace,
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// A failure.
    Error,
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The Element's `log` calls.
    Element,
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error (a Rust panic message lands here).
    Stderr,
    /// The host, about the Element (traps, limits, deploys).
    Host,
}

/// One log line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Severity.
    pub level: Level,
    /// Origin.
    pub source: Source,
    /// The request being served, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The text.
    pub message: String,
}

/// A ring buffer of the most recent [`CAPACITY`] lines.
#[derive(Debug, Default)]
pub struct LogBuffer {
    lines: Mutex<VecDeque<LogLine>>,
}

impl LogBuffer {
    /// An empty buffer.
    pub fn new() -> LogBuffer {
        LogBuffer::default()
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&self, level: Level, source: Source, request_id: Option<&str>, message: &str) {
        let line = LogLine {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            level,
            source,
            request_id: request_id.map(str::to_owned),
            message: truncate(message, MAX_MESSAGE).to_owned(),
        };
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == CAPACITY {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The most recent `limit` lines, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let skip = lines.len().saturating_sub(limit);
        lines.iter().skip(skip).cloned().collect()
    }
}

/// `s` cut to at most `max` bytes without splitting a character.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_most_recent_lines() {
        let log = LogBuffer::new();
        for i in 0..CAPACITY + 5 {
            log.push(Level::Info, Source::Element, None, &format!("line {i}"));
        }
        let lines = log.recent(usize::MAX);
        assert_eq!(lines.len(), CAPACITY);
        assert_eq!(lines[0].message, "line 5");
        assert_eq!(log.recent(2)[1].message, format!("line {}", CAPACITY + 4));
    }

    #[test]
    fn truncates_at_a_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
