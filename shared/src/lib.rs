//! The campaign engine's domain crate: rules in `domain`, what they need from the world in
//! `ports`, use cases in `app`, and the adapters that connect them to AWS, providers and
//! HTTP. See the README's architecture section.

/// Every binary that links this crate (the functions, `local`, the bench, the tests)
/// allocates with mimalloc: the engine allocates many small short-lived values (JSON
/// items, HTTP headers, strings), and with glibc's malloc the throughput bench spent over
/// a quarter of its CPU in malloc/free and lock handoffs between arenas (engine CPU per
/// message 535 µs with glibc, 369 µs with mimalloc; README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod adapters;
pub mod app;
pub mod compose;
pub mod config;
pub mod domain;
pub mod http;
pub mod lambda;
pub mod ports;
pub mod providers;
pub mod repo;
