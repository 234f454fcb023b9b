//! The Element's standard output and error, and its panics, written to its
//! log through `elements:platform/log`.
//!
//! Rust's std writes stdout and stderr through wasi-libc's `write` and
//! `writev`, and those bring the whole of wasi-libc's stdio with them:
//! seventeen `wasi:cli` and `wasi:io` imports in every component, even one
//! that never prints. Wasmtime links each import anew for every instance,
//! which for a `fresh` Element is a quarter of a request's instructions
//! (see docs/performance-history.md). Defining both functions here keeps
//! wasi-libc's out of the link, and its imports with them.
//!
//! What an Element sees is the same: `println!` lines are logged at info and
//! `eprintln!` lines at warn, and a panic is one error line naming where it
//! was raised (set up by [`run`], the entry point of every export). An
//! SDK-built Element has no other descriptors to write to: the runtime gives
//! it no files and no sockets. Elements that need wasi:cli's own streams
//! turn the SDK's default `stdio` feature off.

use std::ffi::c_int;

use crate::log::Level;

/// Longest line passed to the log in one piece (the host's own limit).
const MAX_LINE: usize = 4096;

/// wasi-libc's `EBADF` and `EINVAL`.
const EBADF: c_int = 8;
const EINVAL: c_int = 28;
/// Most buffers one `writev` takes (POSIX's `IOV_MAX` on wasi-libc).
const IOV_MAX: c_int = 1024;

/// One stream's line being written: the bytes since its last newline.
struct Line {
    level: Level,
    bytes: Vec<u8>,
}

impl Line {
    const fn new(level: Level) -> Line {
        Line {
            level,
            bytes: Vec::new(),
        }
    }

    /// Adds `bytes`, handing each line they finish to `emit`: without its
    /// newline (or `\r\n`), and cut every [`MAX_LINE`] bytes.
    fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(Level, &str)) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.bytes.len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.bytes.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    self.finish(emit);
                }
                None => {
                    self.bytes.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                    if self.bytes.len() == MAX_LINE {
                        self.finish(emit);
                    }
                }
            }
        }
    }

    /// Hands what there is of the line to `emit`, if anything.
    fn finish(&mut self, emit: &mut impl FnMut(Level, &str)) {
        if self.bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.bytes);
        emit(self.level, text.strip_suffix('\r').unwrap_or(&text));
        self.bytes.clear();
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub use guest::*;

/// The parts that exist only inside a (single-threaded) component.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod guest {
    use std::cell::RefCell;
    use std::ffi::{c_int, c_void};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{EBADF, EINVAL, IOV_MAX, Line};
    use crate::log::Level;

    /// Standard output's and standard error's lines.
    static LINES: Lines = Lines(RefCell::new([Line::new(Level::Info), Line::new(Level::Warn)]));

    /// Not a `thread_local!`: its accessor is called through the function
    /// table, and a fresh instance fills each table slot it calls through
    /// (a thousand instructions).
    struct Lines(RefCell<[Line; 2]>);

    // SAFETY: an Element has one thread (this module is compiled only for
    // WebAssembly without threads).
    unsafe impl Sync for Lines {}

    /// Runs one call of an export: panics are logged (the hook is set once
    /// per instance, so an Element may still set its own), and what is
    /// left of a line when the call ends is logged then, not in the next.
    pub fn run<R>(call: impl FnOnce() -> R) -> R {
        // Not `Once`: its closure is called through the function table
        // (see `Lines`).
        static HOOKED: AtomicBool = AtomicBool::new(false);
        if !HOOKED.swap(true, Ordering::Relaxed) {
            std::panic::set_hook(Box::new(log_panic));
        }
        let result = call();
        // Not std's own stdout buffer: flushing it would cost every fresh
        // instance some 800 instructions. As in any program, `print!`
        // without a newline waits there for one, or for `stdout().flush()`.
        flush();
        result
    }

    fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
        flush();
        let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
        let line = match info.location() {
            Some(at) => format!("panicked at {at}: {message}"),
            None => format!("panicked: {message}"),
        };
        crate::log::write(Level::Error, &line);
    }

    /// Logs what is left of both streams' lines.
    fn flush() {
        // Not while a write is under way (a panic inside one): its bytes
        // are lost with the trap that follows.
        if let Ok(mut lines) = LINES.0.try_borrow_mut() {
            for line in lines.iter_mut() {
                line.finish(&mut crate::log::write);
            }
        }
    }

    fn append(fd: c_int, bytes: &[u8]) {
        let mut lines = LINES.0.borrow_mut();
        lines[if fd == 1 { 0 } else { 1 }].push(bytes, &mut crate::log::write);
    }

    unsafe extern "C" {
        fn __errno_location() -> *mut c_int;
    }

    fn fail(errno: c_int) -> isize {
        // SAFETY: wasi-libc's errno of the (only) thread.
        unsafe { *__errno_location() = errno };
        -1
    }

    /// POSIX `write`, for the only descriptors an Element has: 1 and 2.
    ///
    /// # Safety
    ///
    /// `buf` points to `count` readable bytes (the C contract).
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: usize) -> isize {
        if fd != 1 && fd != 2 {
            return fail(EBADF);
        }
        if count > isize::MAX as usize {
            return fail(EINVAL);
        }
        if count > 0 {
            // SAFETY: the caller's contract.
            append(fd, unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), count) });
        }
        count as isize
    }

    /// One buffer of a `writev` (C's `struct iovec`).
    #[repr(C)]
    pub struct IoVec {
        base: *const c_void,
        len: usize,
    }

    /// POSIX `writev`, for descriptors 1 and 2.
    ///
    /// # Safety
    ///
    /// `iov` points to `iovcnt` buffers, each pointing to `len` readable bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn writev(fd: c_int, iov: *const IoVec, iovcnt: c_int) -> isize {
        if fd != 1 && fd != 2 {
            return fail(EBADF);
        }
        if !(0..=IOV_MAX).contains(&iovcnt) {
            return fail(EINVAL);
        }
        // SAFETY: the caller's contract.
        let buffers = match iovcnt {
            0 => &[][..],
            n => unsafe { std::slice::from_raw_parts(iov, n as usize) },
        };
        let total = buffers.iter().try_fold(0usize, |sum, b| sum.checked_add(b.len));
        let Some(total) = total.filter(|&t| t <= isize::MAX as usize) else {
            return fail(EINVAL);
        };
        for b in buffers.iter().filter(|b| b.len > 0) {
            // SAFETY: the caller's contract.
            append(fd, unsafe {
                std::slice::from_raw_parts(b.base.cast::<u8>(), b.len)
            });
        }
        total as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(level: Level, writes: &[&[u8]]) -> Vec<(Level, String)> {
        let mut line = Line::new(level);
        let mut out = Vec::new();
        let mut emit = |level, text: &str| out.push((level, text.to_owned()));
        for bytes in writes {
            line.push(bytes, &mut emit);
        }
        line.finish(&mut emit);
        out
    }

    #[test]
    fn writes_become_lines_whatever_their_pieces() {
        let got = lines(Level::Info, &[b"a ", b"b\nc\r\n", b"\n", b"", b"d\ne"]);
        let texts: Vec<_> = got.iter().map(|(_, t)| t.as_str()).collect();
        // The empty line between `c` and `d` is not logged; `e` is, at the end.
        assert_eq!(texts, ["a b", "c", "d", "e"]);
        assert!(got.iter().all(|(level, _)| *level == Level::Info));
    }

    #[test]
    fn a_long_line_is_cut_and_bad_utf8_is_replaced() {
        let long = vec![b'x'; 2 * MAX_LINE + 5];
        let got = lines(Level::Warn, &[&long[..100], &long[100..], b"\n\xff\xfeok\n"]);
        let lens: Vec<_> = got.iter().map(|(_, t)| t.len()).collect();
        assert_eq!(lens[..3], [MAX_LINE, MAX_LINE, 5]);
        assert_eq!(got[3].1, "\u{fffd}\u{fffd}ok");
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_line_of_exactly_the_limit_then_its_newline_is_one_line() {
        let mut bytes = vec![b'y'; MAX_LINE];
        bytes.push(b'\n');
        let got = lines(Level::Info, &[&bytes]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), MAX_LINE);
    }
}
