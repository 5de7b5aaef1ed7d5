//! Test doubles shared by the crate's tests, benchmarks and the `prefetch`
//! command (feature `testing`): a local HTTP server with simulated latency
//! and bandwidth and scripted faults.

pub mod http_server;

pub use http_server::{Fault, RequestRecord, ServerBuilder, TestServer};
