//! The Element's environment variables: none from the host, and those the
//! Element sets itself.
//!
//! The runtime gives an Element no environment (an Element's settings are
//! its attributes), yet wasi-libc's `getenv`, which std calls for
//! `std::env::var` and on every panic (to read `RUST_BACKTRACE`), asks the
//! host for the environment through `wasi:cli/environment`, and exits
//! through `wasi:cli/exit` if that fails: two imports in every component,
//! which wasmtime links again for every new instance (about 2,300
//! instructions of a fresh `GET /hello`). The SDK's `environ` feature (on
//! by default) stands in for `getenv`, `setenv` and `unsetenv`, so std's
//! `env::var`, `set_var` and `remove_var` work as before on an environment
//! that starts empty, as the host's is, and wasi-libc's stays out of the
//! link with both imports.
//!
//! `std::env::vars()` still lists wasi-libc's environment, the host's
//! (empty) one, without what the Element set: a component that calls it
//! imports `wasi:cli/environment` again. C code built into an Element that
//! calls `putenv` or `clearenv` brings wasi-libc's `setenv` with it, which
//! would clash with this one: turn the feature off for such an Element.

use std::ffi::{CStr, CString};

/// What the Element set: names and values, without their `=`.
#[derive(Default)]
struct Vars(Vec<(CString, CString)>);

/// Why a name can't be set or unset (POSIX's `EINVAL`).
#[derive(Debug, PartialEq)]
struct InvalidName;

impl Vars {
    fn get(&self, name: &CStr) -> Option<&CStr> {
        self.0
            .iter()
            .find(|(n, _)| n.as_c_str() == name)
            .map(|(_, v)| v.as_c_str())
    }

    fn set(&mut self, name: &CStr, value: &CStr, overwrite: bool) -> Result<(), InvalidName> {
        check(name)?;
        match self.0.iter_mut().find(|(n, _)| n.as_c_str() == name) {
            Some((_, old)) if overwrite => *old = value.to_owned(),
            Some(_) => {}
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
        Ok(())
    }

    fn unset(&mut self, name: &CStr) -> Result<(), InvalidName> {
        check(name)?;
        self.0.retain(|(n, _)| n.as_c_str() != name);
        Ok(())
    }
}

/// POSIX refuses an empty name and one with `=`.
fn check(name: &CStr) -> Result<(), InvalidName> {
    let bytes = name.to_bytes();
    if bytes.is_empty() || bytes.contains(&b'=') {
        return Err(InvalidName);
    }
    Ok(())
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod guest {
    use std::cell::RefCell;
    use std::ffi::{CStr, c_char, c_int};

    use super::Vars;

    /// Not a `thread_local!`: see `Lines` in stdio.rs.
    struct Env(RefCell<Vars>);

    // SAFETY: an Element has one thread (this module is compiled only for
    // WebAssembly without threads).
    unsafe impl Sync for Env {}

    static ENV: Env = Env(RefCell::new(Vars(Vec::new())));

    /// wasi-libc's `EINVAL`.
    const EINVAL: c_int = 28;

    unsafe extern "C" {
        fn __errno_location() -> *mut c_int;
    }

    fn fail() -> c_int {
        // SAFETY: wasi-libc's errno of the (only) thread.
        unsafe { *__errno_location() = EINVAL };
        -1
    }

    /// # Safety
    ///
    /// A non-null `ptr` points to a NUL-terminated string (the C contract).
    unsafe fn text<'a>(ptr: *const c_char) -> Option<&'a CStr> {
        // SAFETY: the caller's contract.
        (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) })
    }

    /// POSIX `getenv`. The string stays valid until the Element sets or
    /// unsets that variable (std copies it at once).
    ///
    /// # Safety
    ///
    /// `name` is null or a NUL-terminated string.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn getenv(name: *const c_char) -> *mut c_char {
        // SAFETY: the caller's contract.
        let Some(name) = (unsafe { text(name) }) else {
            return std::ptr::null_mut();
        };
        match ENV.0.borrow().get(name) {
            Some(value) => value.as_ptr().cast_mut(),
            None => std::ptr::null_mut(),
        }
    }

    /// POSIX `setenv`.
    ///
    /// # Safety
    ///
    /// `name` and `value` are null or NUL-terminated strings.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn setenv(name: *const c_char, value: *const c_char, overwrite: c_int) -> c_int {
        // SAFETY: the caller's contract.
        let (Some(name), Some(value)) = (unsafe { text(name) }, unsafe { text(value) }) else {
            return fail();
        };
        match ENV.0.borrow_mut().set(name, value, overwrite != 0) {
            Ok(()) => 0,
            Err(_) => fail(),
        }
    }

    /// POSIX `unsetenv`.
    ///
    /// # Safety
    ///
    /// `name` is null or a NUL-terminated string.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn unsetenv(name: *const c_char) -> c_int {
        // SAFETY: the caller's contract.
        let Some(name) = (unsafe { text(name) }) else {
            return fail();
        };
        match ENV.0.borrow_mut().unset(name) {
            Ok(()) => 0,
            Err(_) => fail(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn nothing_is_set_until_the_element_sets_it() {
        let mut vars = Vars::default();
        assert_eq!(vars.get(&c("PATH")), None);
        vars.set(&c("MODE"), &c("fast"), true).unwrap();
        assert_eq!(vars.get(&c("MODE")), Some(c("fast").as_c_str()));
        assert_eq!(vars.get(&c("MOD")), None);
    }

    #[test]
    fn overwrite_is_honoured_and_unset_removes() {
        let mut vars = Vars::default();
        vars.set(&c("A"), &c("1"), false).unwrap();
        vars.set(&c("A"), &c("2"), false).unwrap();
        assert_eq!(vars.get(&c("A")), Some(c("1").as_c_str()));
        vars.set(&c("A"), &c("3"), true).unwrap();
        assert_eq!(vars.get(&c("A")), Some(c("3").as_c_str()));
        vars.unset(&c("A")).unwrap();
        assert_eq!(vars.get(&c("A")), None);
        // Unsetting what isn't set is not an error.
        vars.unset(&c("A")).unwrap();
    }

    #[test]
    fn names_posix_refuses_are_refused() {
        let mut vars = Vars::default();
        assert_eq!(vars.set(&c(""), &c("x"), true), Err(InvalidName));
        assert_eq!(vars.set(&c("A=B"), &c("x"), true), Err(InvalidName));
        assert_eq!(vars.unset(&c("A=B")), Err(InvalidName));
        assert!(vars.0.is_empty());
    }
}
