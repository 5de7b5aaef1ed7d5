//! Test doubles shared by the crate's tests, benchmarks and the `prefetch`
//! command (feature `testing`): sources that simulate a link, count, fail or
//! block, and a local HTTP server with simulated latency, bandwidth and
//! faults.

pub mod http_server;
pub mod sources;

pub use http_server::{
    Fault, RequestRecord, ServerBuilder, TestServer, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
};
pub use sources::{
    fill_pattern, is_pattern, pattern, pattern_byte, BlockingSource, Call, CountingSource,
    FailingSource, Gate, ScriptedSource, SimulatedLink, Step,
};
