//! The conformance vectors (`tests/vectors/vectors.json`, generated with
//! Python's `hmac` by `tests/vectors/generate.py`) and the HTTP suite that
//! every adapter runs, so the same request gets the same answer everywhere.
//!
//! The cases are data (`Case`: a server, a request, the expected answer and
//! checks, in tables by topic: vectors, HTTP rules, hostile input, per-route
//! and per-tenant endpoints) run by one small runner, as juniper's
//! `run_http_test_suite` does. Joining the suite takes a few lines in an
//! adapter's `tests/`:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use plugipay_webhook_conformance::{run, Adapter, Recorder, Source};
//!
//! struct MyFramework;
//! impl Adapter for MyFramework {
//!     fn name(&self) -> &'static str { "my-framework" }
//!     fn start(&self, source: Source, recorder: Recorder) -> SocketAddr {
//!         // spawn a server on 127.0.0.1:0 serving POST on every path; return its address
//! #       let _ = (source, recorder); todo_start_server()
//!     }
//! }
//!
//! # fn todo_start_server() -> SocketAddr { "127.0.0.1:1".parse().unwrap() }
//! run(&MyFramework).assert_all_passed();
//! ```
//!
//! [`plumbing`] holds what every crate's tests share: servers on threads,
//! real servers' URLs, processes that print a listening line.

mod cases;
mod client;
mod logs;
mod model;
pub mod plumbing;
mod suite;
mod vectors;

pub use client::{send, BodyPlan, RawRequest, RawResponse};
pub use model::{Expected, Source, WEBHOOK_PATH};
pub use suite::{run, Adapter, Recorder, Report};
pub use vectors::{load_vectors, Expect, ExpectedEvent, Vector, VectorFile};
