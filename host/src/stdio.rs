//! Guest stdout and stderr, captured line by line into the Element's log.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::log_buffer::{Level, MAX_MESSAGE, RequestLog, Source, clean};

/// One of a guest's output streams. Clones share state, since a guest may
/// open its stdout more than once. Bytes past
/// [`MAX_OUTPUT_PER_REQUEST`](crate::log_buffer::MAX_OUTPUT_PER_REQUEST) per
/// request are dropped and lines count against the request's log budget
/// (the guest is not told, so a chatty guest never fails because of it);
/// a line is cut at [`MAX_MESSAGE`] bytes.
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Lines>>);

struct Lines {
    source: Source,
    log: Arc<RequestLog>,
    pending: Vec<u8>,
    /// A Rust panic being gathered: std writes it as several stderr lines
    /// (`thread '..' panicked at FILE:LINE:COL:`, the message, a note about
    /// RUST_BACKTRACE), which are logged as one line so the message is never
    /// read apart from where it was raised.
    panic: Option<String>,
}

impl GuestOutput {
    /// A stream whose lines go to the request's log tagged with `source`.
    pub fn new(source: Source, log: Arc<RequestLog>) -> Self {
        GuestOutput(Arc::new(Mutex::new(Lines {
            source,
            log,
            pending: Vec::new(),
            panic: None,
        })))
    }

    fn append(&self, bytes: &[u8]) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.append(bytes);
    }
}

impl Lines {
    fn append(&mut self, mut bytes: &[u8]) {
        let (room, first_cut) = self.log.output_room(self.source, bytes.len());
        bytes = &bytes[..room];
        for &b in bytes {
            if b == b'\n' {
                self.emit();
            } else if self.pending.len() < MAX_MESSAGE {
                self.pending.push(b);
            }
        }
        if first_cut {
            self.emit_text("[output truncated: more than 64 KiB in one request]");
        }
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let line = line.trim_end_matches('\r');
        if self.source != Source::Stderr {
            return self.emit_text(line);
        }
        if line.starts_with("thread '") && line.contains(" panicked at ") {
            self.flush_panic();
            self.panic = Some(format!("panic: {line}"));
        } else if line.starts_with("note: run with `RUST_BACKTRACE") {
            // Noise for an Element: there is no environment to set.
            self.flush_panic();
        } else if let Some(panic) = &mut self.panic {
            if panic.len() < MAX_MESSAGE {
                panic.push(' ');
                panic.push_str(line);
            }
        } else {
            self.emit_text(line);
        }
    }

    fn flush_panic(&mut self) {
        if let Some(panic) = self.panic.take() {
            self.emit_text(&panic);
        }
    }

    fn emit_text(&self, line: &str) {
        let Some(request_id) = self.log.admit() else {
            return;
        };
        let line = clean(line);
        let element = self.log.element();
        let (level, stream) = match self.source {
            Source::Stderr => (Level::Warn, "stderr"),
            _ => (Level::Info, "stdout"),
        };
        if self.source == Source::Stderr {
            tracing::warn!(target: "element", element = %element, request_id = %request_id, stream, "{line}");
        } else {
            tracing::info!(target: "element", element = %element, request_id = %request_id, stream, "{line}");
        }
        self.log
            .buffer()
            .push(level, self.source, Some(&request_id), &line);
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
        self.flush_panic();
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
        Ok(MAX_MESSAGE)
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
