//! The process's memory allocator: mimalloc, tuned to stay small. Every
//! binary linking this crate (the server, its benches and tests) uses it, so
//! benchmark figures are the server's.

/// mimalloc, not the system allocator: the request path allocates and frees
/// small blocks across worker threads, where glibc's malloc took twice the
/// time (see the README's Soak benchmark). glibc also kept the pages a
/// burst of load freed until trimmed; mimalloc returns most of them by
/// itself (about 5 MiB stays, in threads' heaps).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
