#![doc = include_str!("../../README.md")]
//!
//! ---
//!
//! This package holds the example receivers (`--bin axum`, `tower`,
//! `actix-web`, `rocket`, `warp`) and
//! the pieces they share: start-up ([`Config`]), the handler table and the
//! de-duplication of at-least-once deliveries ([`Receiver`]).

mod receiver;

pub use plugipay_webhook_dispatch::Outcome;
pub use receiver::{
    init_tracing, shutdown_signal, Config, Receiver, HEALTH_ROUTE, PLAIN_ROUTE, TENANT_ROUTE,
    WEBHOOK_ROUTE,
};
