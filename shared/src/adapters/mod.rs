//! Adapters: the AWS implementation of each port and its in-memory twin.

pub mod aws;
pub mod inbound_queue;
pub mod memory;
pub mod memory_objects;
pub mod secrets;
pub mod sqs_event;
