//! The conformance vectors (`tests/vectors/vectors.json`, generated with
//! Python's `hmac` by `tests/vectors/generate.py`) and the HTTP suite that
//! every adapter runs, so the same request gets the same answer everywhere.
//!
//! Joining the suite takes a few lines in an adapter's `tests/`:
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use plugipay_webhook::Verifier;
//! use plugipay_webhook_conformance::{run, Adapter, Recorder};
//!
//! struct MyFramework;
//! impl Adapter for MyFramework {
//!     fn name(&self) -> &'static str { "my-framework" }
//!     fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr {
//!         // spawn a server on 127.0.0.1:0 serving POST /webhook; return its address
//! #       let _ = (verifier, recorder); todo_start_server()
//!     }
//! }
//!
//! # fn todo_start_server() -> SocketAddr { "127.0.0.1:1".parse().unwrap() }
//! run(&MyFramework).assert_all_passed();
//! ```

mod client;
mod hostile;
mod logs;
mod suite;
mod vectors;

pub use client::{send, BodyPlan, RawRequest, RawResponse};
pub use suite::{run, Adapter, Expected, Recorder, Report, WEBHOOK_PATH};
pub use vectors::{load_vectors, Expect, ExpectedEvent, Vector, VectorFile};
