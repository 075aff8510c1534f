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
    init_metrics, init_tracing, render_metrics, shutdown_signal, Config, Console, Receiver,
    CONSOLE_ROUTE, HEALTH_ROUTE, METRICS_CONTENT_TYPE, METRICS_ROUTE, PLAIN_ROUTE, TENANT_ROUTE,
    WEBHOOK_ROUTE,
};

/// The framework guides under `docs/`, compiled and run as doctests so their
/// snippets cannot drift from the crates.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../docs/axum.md")]
    struct Axum;
    #[doc = include_str!("../../docs/tower.md")]
    struct Tower;
    #[doc = include_str!("../../docs/actix-web.md")]
    struct ActixWeb;
    #[doc = include_str!("../../docs/rocket.md")]
    struct Rocket;
    #[doc = include_str!("../../docs/warp.md")]
    struct Warp;
    #[doc = include_str!("../../docs/troubleshooting.md")]
    struct Troubleshooting;
    #[doc = include_str!("../../docs/dedup.md")]
    struct Dedup;
    #[doc = include_str!("../../docs/http.md")]
    struct Http;
    #[doc = include_str!("../../docs/behaviour.md")]
    struct Behaviour;
    #[doc = include_str!("../../docs/security.md")]
    struct Security;
    #[doc = include_str!("../../docs/performance.md")]
    struct Performance;
    #[doc = include_str!("../../docs/operations.md")]
    struct Operations;
    #[doc = include_str!("../../docs/inbox.md")]
    struct InboxGuide;
    #[doc = include_str!("../../docs/console.md")]
    struct ConsoleGuide;
    #[doc = include_str!("../../docs/production-databases.md")]
    struct ProductionDatabases;
}
