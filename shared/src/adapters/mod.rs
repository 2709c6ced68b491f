//! Adapters: the production implementations of the ports (AWS services, the system clock,
//! secret references). Their in-memory twins live in the `testkit` crate; the messaging
//! providers in `providers`.

pub mod aws;
pub mod clock;
pub mod secrets;
