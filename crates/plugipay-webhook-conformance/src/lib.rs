//! The conformance vectors (`tests/vectors/vectors.json`, generated with
//! Python's `hmac` by `tests/vectors/generate.py`) and the HTTP suite that
//! every adapter runs, so the same request gets the same answer everywhere.

mod vectors;

pub use vectors::{load_vectors, Expect, ExpectedEvent, Vector, VectorFile};
