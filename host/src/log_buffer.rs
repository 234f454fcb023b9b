//! The bounded, per-Element log that operators read through the admin API:
//! the Element's own log calls, its stdout and stderr, and what the host says
//! about it (traps, timeouts, limit breaches).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How many lines an Element's buffer keeps; older lines are dropped first.
pub const CAPACITY: usize = 1000;
/// Longest message kept, in bytes; longer ones are cut at a char boundary.
pub const MAX_MESSAGE: usize = 4096;

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
            message: clean(message).into_owned(),
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

/// `message` made into one bounded log line: cut to [`MAX_MESSAGE`] bytes,
/// with line breaks and other control characters escaped (`\n` becomes the
/// two characters `\` `n`), so no message can forge further lines in the
/// server log or the buffer.
pub fn clean(message: &str) -> Cow<'_, str> {
    let message = truncate(message, MAX_MESSAGE);
    let forges = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !message.contains(forges) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 16);
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if forges(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    // Escaping lengthens the text: cut again so the bound holds.
    let cut = truncate(&out, MAX_MESSAGE).len();
    out.truncate(cut);
    Cow::Owned(out)
}

/// Most bytes one request may write to each of stdout and stderr.
pub const MAX_OUTPUT_PER_REQUEST: usize = 64 * 1024;

/// The log budget of the request an instance is serving, shared by its
/// `log` calls, stdout and stderr: at most `max_lines` lines, then one line
/// saying the rest are dropped. Under `isolation = "reuse"` the instance
/// keeps it and [`RequestLog::renew`] starts the next request's budget.
#[derive(Debug)]
pub struct RequestLog {
    element: Arc<str>,
    buffer: Arc<LogBuffer>,
    max_lines: u32,
    state: Mutex<RequestLogState>,
}

#[derive(Debug)]
struct RequestLogState {
    request_id: Arc<str>,
    lines: u32,
    dropped: bool,
    output_bytes: [usize; 2],
    output_truncated: [bool; 2],
}

impl RequestLogState {
    fn new(request_id: Arc<str>) -> RequestLogState {
        RequestLogState {
            request_id,
            lines: 0,
            dropped: false,
            output_bytes: [0; 2],
            output_truncated: [false; 2],
        }
    }
}

impl RequestLog {
    /// The budget of request `request_id` of `element`, whose lines go to `buffer`.
    pub fn new(element: Arc<str>, buffer: Arc<LogBuffer>, request_id: Arc<str>, max_lines: u32) -> Self {
        RequestLog {
            element,
            buffer,
            max_lines,
            state: Mutex::new(RequestLogState::new(request_id)),
        }
    }

    /// Starts the budget of the next request the same instance serves.
    pub fn renew(&self, request_id: Arc<str>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = RequestLogState::new(request_id);
    }

    /// The Element's name.
    pub fn element(&self) -> &Arc<str> {
        &self.element
    }

    /// The Element's log buffer.
    pub fn buffer(&self) -> &LogBuffer {
        &self.buffer
    }

    /// Takes one line from the budget: the request's id when the line may be
    /// written, `None` when it must be dropped. The first drop writes the one
    /// line that says so.
    pub fn admit(&self) -> Option<Arc<str>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.lines < self.max_lines {
            state.lines += 1;
            return Some(state.request_id.clone());
        }
        if !state.dropped {
            state.dropped = true;
            let request_id = state.request_id.clone();
            drop(state);
            let note = format!(
                "log limit of {} lines per request reached; further lines of this request are dropped",
                self.max_lines
            );
            tracing::warn!(target: "element", element = %self.element, request_id = %request_id, "{note}");
            self.buffer
                .push(Level::Warn, Source::Host, Some(&request_id), &note);
        }
        None
    }

    /// How many of `len` bytes of guest output on `source` (stdout or
    /// stderr) this request may still write, and whether this is the first
    /// time the stream's per-request cap cut it.
    pub fn output_room(&self, source: Source, len: usize) -> (usize, bool) {
        let i = usize::from(source == Source::Stderr);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_OUTPUT_PER_REQUEST.saturating_sub(state.output_bytes[i]);
        let allowed = len.min(room);
        state.output_bytes[i] += allowed;
        let first_cut = allowed < len && !state.output_truncated[i];
        if allowed < len {
            state.output_truncated[i] = true;
        }
        (allowed, first_cut)
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
    fn control_characters_are_escaped_and_the_bound_holds() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(clean("a\nINFO forged\r\tb"), "a\\nINFO forged\\r\\tb");
        assert_eq!(clean("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(clean("x\u{2028}y"), "x\\u{2028}y");
        let newlines = "\n".repeat(MAX_MESSAGE);
        let cleaned = clean(&newlines);
        assert!(cleaned.len() <= MAX_MESSAGE);
        assert!(!cleaned.contains('\n'));
        let log = LogBuffer::new();
        log.push(Level::Info, Source::Element, None, "one\ntwo");
        assert_eq!(log.recent(1)[0].message, "one\\ntwo");
    }

    #[test]
    fn a_request_writes_at_most_its_budget_then_one_note() {
        let buffer = Arc::new(LogBuffer::new());
        let log = RequestLog::new("e".into(), buffer.clone(), "r1".into(), 3);
        let admitted = (0..10).filter(|_| log.admit().is_some()).count();
        assert_eq!(admitted, 3);
        let lines = buffer.recent(usize::MAX);
        assert_eq!(lines.len(), 1, "exactly one note about the dropped lines");
        assert!(lines[0].message.contains("dropped"), "{}", lines[0].message);
        log.renew("r2".into());
        assert_eq!(log.admit().as_deref(), Some("r2"));
    }

    #[test]
    fn guest_output_is_capped_per_stream_and_request() {
        let log = RequestLog::new("e".into(), Arc::new(LogBuffer::new()), "r".into(), 10);
        assert_eq!(
            log.output_room(Source::Stdout, MAX_OUTPUT_PER_REQUEST - 1),
            (MAX_OUTPUT_PER_REQUEST - 1, false)
        );
        assert_eq!(log.output_room(Source::Stdout, 10), (1, true));
        assert_eq!(log.output_room(Source::Stdout, 10), (0, false));
        assert_eq!(log.output_room(Source::Stderr, 10), (10, false));
    }

    #[test]
    fn truncates_at_a_char_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
