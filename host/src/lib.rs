//! The wasmtime side of the server: the engine that bounds guests, what an
//! Element instance can reach (WASI, `wasi:http`, the host services), and
//! the compiled, validated [`element::Element`] with how it serves a
//! request. No HTTP framework and no storage engine here: the server's
//! HTTP front hands requests in, and the composition root hands the
//! services their store, identity and event bus.
//!
//! The pieces, in dependency order:
//! - [`clock`]: the wall clock guests and the store see;
//! - [`engine`]: the wasmtime engine and the epoch ticker that bounds guests;
//! - [`events`]: the runtime's event bus;
//! - [`log_buffer`]: each Element's recent log lines;
//! - [`instance`], [`stdio`] and [`services`]: one instance's state, its
//!   output, and the host services it may import;
//! - [`element`]: a compiled, validated Element and how it serves a request.

pub mod clock;
pub mod element;
pub mod engine;
pub mod events;
pub mod instance;
pub mod log_buffer;
pub mod services;
pub mod stdio;
