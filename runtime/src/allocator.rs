//! The process's memory allocator: mimalloc, tuned to stay small. Every
//! binary linking this crate (the server, its benches and tests) uses it, so
//! benchmark figures are the server's.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc, not the system allocator: the request path allocates and frees
/// small blocks across worker threads, where glibc's malloc took twice the
/// time (see Soak in docs/performance-history.md). glibc also kept the pages a
/// burst of load freed until trimmed; mimalloc returns most of them by
/// itself (about 5 MiB stays, in threads' heaps).
#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// Every mimalloc block is aligned to at least a pointer's size.
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc called the way std calls the C allocator: through its plain
/// functions unless the layout asks for more alignment than every block
/// has. (The `mimalloc` crate calls the aligned functions for everything;
/// their fast path takes only blocks of up to 1 KiB whose free list happens
/// to be aligned, and larger blocks of sizes that are not powers of two
/// were over-allocated through the slow path: 4% of a server's request
/// instructions went to that, measured with callgrind.)
struct Mimalloc;

// SAFETY: each call forwards to mimalloc, which is thread-safe, with the
// layout's alignment honoured: blocks from the plain functions are aligned
// to `PLAIN_ALIGN`, larger alignments go to the aligned functions; every
// block, however allocated, is freed by `mi_free`.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// mimalloc's option numbers (`mi_option_t` in the `mimalloc.h` that
/// libmimalloc-sys bundles; the crate names only a few). A test checks
/// that the environment's `MIMALLOC_*` names land on them.
pub(crate) mod mimalloc_option {
    pub const ARENA_EAGER_COMMIT: i32 = 4;
    pub const PURGE_DELAY: i32 = 15;
}

/// By default mimalloc commits its arenas eagerly and purges freed pages
/// after a delay, which kept about 40 MiB more resident than glibc did (the
/// soak benchmark, before any load). Committing on demand and purging at
/// once keeps the server about as small as glibc kept it, at no cost
/// measured in throughput. These are defaults: `MIMALLOC_*` variables still
/// override them.
///
/// They must be in place before mimalloc reads its options, at its first
/// allocation or in its own ELF constructor, which runs before `main`
/// (setting them in `main` kept 20 MiB of the 40). Hence a constructor of
/// our own, of higher priority (a lower number sorts first in
/// `.init_array`; mimalloc's has none or 101). It allocates nothing.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune_allocator() {
        // SAFETY: runs before `main`, on the only thread; these only store
        // into mimalloc's option table.
        unsafe {
            libmimalloc_sys::mi_option_set_default(mimalloc_option::ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set_default(mimalloc_option::PURGE_DELAY, 0);
        }
    }
    tune_allocator
};

#[cfg(test)]
mod tests {
    use super::mimalloc_option::{ARENA_EAGER_COMMIT, PURGE_DELAY};
    use super::{Mimalloc, PLAIN_ALIGN};
    use std::alloc::{GlobalAlloc, Layout};

    /// Every layout gets its alignment, whichever function serves it, and
    /// growing or shrinking keeps the contents.
    #[test]
    fn blocks_are_aligned_and_keep_their_contents_across_realloc() {
        let pattern = |i: usize| (i % 251) as u8;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 24, 100, 1000, 1025, 1500, 3000, 4096, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                for new_size in [size * 3 + 5, size.div_ceil(2)] {
                    // SAFETY: non-zero sizes; each block is used within its
                    // size and freed once, with the layout it has then.
                    unsafe {
                        let zeroed = Mimalloc.alloc_zeroed(layout);
                        assert!(
                            !zeroed.is_null() && (zeroed as usize).is_multiple_of(align),
                            "{size}/{align}"
                        );
                        assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|b| *b == 0));
                        Mimalloc.dealloc(zeroed, layout);

                        let block = Mimalloc.alloc(layout);
                        assert!(
                            !block.is_null() && (block as usize).is_multiple_of(align),
                            "{size}/{align}"
                        );
                        (0..size).for_each(|i| *block.add(i) = pattern(i));
                        let moved = Mimalloc.realloc(block, layout, new_size);
                        assert!(
                            !moved.is_null() && (moved as usize).is_multiple_of(align),
                            "{size}/{align} -> {new_size}"
                        );
                        assert!(
                            (0..size.min(new_size)).all(|i| *moved.add(i) == pattern(i)),
                            "{size}/{align} -> {new_size}"
                        );
                        Mimalloc.dealloc(moved, Layout::from_size_align(new_size, align).unwrap());
                    }
                }
            }
        }
        assert_eq!(PLAIN_ALIGN, std::mem::align_of::<usize>());
    }

    /// In a child test process (this test again) with `env`: checks that
    /// mimalloc's options read `expect` (eager commit, purge delay).
    fn child_sees(env: &[(&str, &str)], expect: &str) {
        let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "--exact",
                "allocator::tests::allocator_options_are_ours_unless_the_environment_says",
                "--quiet",
            ])
            .env("ELEMENTS_TEST_MIMALLOC_EXPECT", expect);
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("MIMALLOC_")) {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let output = command.output().expect("child test");
        assert!(
            output.status.success(),
            "{env:?}, expecting {expect}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    #[test]
    fn allocator_options_are_ours_unless_the_environment_says() {
        if let Ok(expect) = std::env::var("ELEMENTS_TEST_MIMALLOC_EXPECT") {
            // SAFETY: reads only.
            let seen = unsafe {
                (
                    libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
                    libmimalloc_sys::mi_option_get(PURGE_DELAY),
                )
            };
            assert_eq!(format!("{},{}", seen.0, seen.1), expect);
            return;
        }
        // Our defaults, set before `main`...
        child_sees(&[], "0,0");
        // ...and the environment's names land on the same numbers, so these
        // are the options we mean, and an operator can still override them.
        child_sees(
            &[
                ("MIMALLOC_ARENA_EAGER_COMMIT", "1"),
                ("MIMALLOC_PURGE_DELAY", "250"),
            ],
            "1,250",
        );
    }
}
