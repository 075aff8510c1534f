//! Shared by the tests that drive the example receivers as processes.

#![allow(dead_code)] // each test file uses a different part

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

#[allow(unused_imports)] // used by the tests that need real servers
pub(crate) use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_conformance::plumbing::Process;

/// Every example receiver binary.
pub(crate) const BINARIES: &[(&str, &str)] = &[
    ("axum", env!("CARGO_BIN_EXE_axum")),
    ("tower", env!("CARGO_BIN_EXE_tower")),
    ("actix-web", env!("CARGO_BIN_EXE_actix-web")),
    ("rocket", env!("CARGO_BIN_EXE_rocket")),
    ("warp", env!("CARGO_BIN_EXE_warp")),
];

/// A running receiver: killed on drop; its stdout lines arrive on `lines`.
pub(crate) struct Running {
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
}

impl Running {
    /// Starts `bin` on a free port with `secret` and `env`; waits for its
    /// `listening on http://…` line.
    pub(crate) fn start(bin: &str, secret: &str, env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(bin);
        cmd.env("PLUGIPAY_WEBHOOK_SECRET", secret)
            .env("PORT", "0")
            .env("RUST_LOG", "error")
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = Process::spawn(cmd);
        let addr = process.listening_addr();
        Running { process, addr }
    }

    /// The stdout lines printed so far (waiting briefly for stragglers).
    pub(crate) fn drain(&self) -> Vec<String> {
        self.process.drain(Duration::from_millis(300))
    }
}
