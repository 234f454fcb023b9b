//! Guest stdout and stderr, captured line by line into the Element's log.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::element::log_buffer::{Level, LogBuffer, Source};

/// Most bytes of output one request may log per stream; the rest is dropped
/// (the guest is not told, so a chatty guest never fails because of it).
const MAX_OUTPUT_PER_REQUEST: usize = 64 * 1024;
/// Longest line kept before it is cut.
const MAX_LINE: usize = 4096;

/// One of a guest's output streams. Clones share state, since a guest may
/// open its stdout more than once.
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Lines>>);

struct Lines {
    source: Source,
    element: Arc<str>,
    request_id: Arc<str>,
    log: Arc<LogBuffer>,
    pending: Vec<u8>,
    written: usize,
    truncated: bool,
}

impl GuestOutput {
    /// A stream whose lines go to `log` tagged with `source`.
    pub fn new(source: Source, element: Arc<str>, request_id: Arc<str>, log: Arc<LogBuffer>) -> Self {
        GuestOutput(Arc::new(Mutex::new(Lines {
            source,
            element,
            request_id,
            log,
            pending: Vec::new(),
            written: 0,
            truncated: false,
        })))
    }

    fn append(&self, bytes: &[u8]) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.append(bytes);
    }
}

impl Lines {
    fn append(&mut self, mut bytes: &[u8]) {
        let room = MAX_OUTPUT_PER_REQUEST.saturating_sub(self.written);
        if bytes.len() > room {
            bytes = &bytes[..room];
            if !self.truncated {
                self.truncated = true;
                self.emit_text("[output truncated: more than 64 KiB in one request]");
            }
        }
        self.written += bytes.len();
        for &b in bytes {
            if b == b'\n' {
                self.emit();
            } else if self.pending.len() < MAX_LINE {
                self.pending.push(b);
            }
        }
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.emit_text(line.trim_end_matches('\r'));
    }

    fn emit_text(&self, line: &str) {
        let level = match self.source {
            Source::Stderr => Level::Warn,
            _ => Level::Info,
        };
        let stream = match self.source {
            Source::Stderr => "stderr",
            _ => "stdout",
        };
        if self.source == Source::Stderr {
            tracing::warn!(target: "element", element = %self.element, request_id = %self.request_id, stream, "{line}");
        } else {
            tracing::info!(target: "element", element = %self.element, request_id = %self.request_id, stream, "{line}");
        }
        self.log.push(level, self.source, Some(&self.request_id), line);
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
