//! Shared by the tests that drive the example receivers as processes.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) lines: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `bin` on a free port with `secret` and `env`; waits for its
    /// `listening on http://…` line.
    pub(crate) fn start(bin: &str, secret: &str, env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(bin);
        cmd.env("PLUGIPAY_WEBHOOK_SECRET", secret)
            .env("PORT", "0")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn receiver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a first line");
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{bin}: unexpected first line {first:?}"))
            .parse()
            .expect("an address");
        Running { child, addr, lines }
    }

    /// The stdout lines printed so far (waiting briefly for stragglers).
    pub(crate) fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(300)) {
            out.push(l);
        }
        out
    }
}

/// A real server's URL from the environment (`scripts/services`), `None`
/// only when `PLUGIPAY_TEST_NO_SERVERS=1` says none exist.
pub(crate) fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PLUGIPAY_TEST_NO_SERVERS").as_deref() == Ok("1") => {
            eprintln!("\n*** SKIPPED: {var} is unset and PLUGIPAY_TEST_NO_SERVERS=1: no real server tested ***\n");
            None
        }
        _ => panic!("{var} is unset: run the tests through scripts/test (it starts the servers), or set PLUGIPAY_TEST_NO_SERVERS=1 to skip"),
    }
}
