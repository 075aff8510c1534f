#![doc = include_str!("../../README.md")]
//!
//! ---
//!
//! This package holds the example receivers (`--bin axum`, `--bin tower`) and
//! the pieces they share: start-up ([`Config`]), the handler table and the
//! de-duplication of at-least-once deliveries ([`Receiver`]).

mod receiver;

pub use receiver::{init_tracing, Config, Outcome, Receiver, WEBHOOK_ROUTE};
