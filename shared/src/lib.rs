//! The campaign engine's domain crate: rules in `domain`, what they need from the world in
//! `ports`, use cases in `app`, and the adapters that connect them to AWS, providers and
//! HTTP. See the README's architecture section.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod http;
pub mod local;
pub mod ports;
pub mod providers;
pub mod repo;
pub mod simulator;
