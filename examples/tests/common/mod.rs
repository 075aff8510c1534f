//! Shared by the tests that drive the example receivers as processes.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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

/// The path of the example receiver binary `name`.
pub(crate) fn bin(name: &str) -> &'static str {
    BINARIES
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a binary")
        .1
}

/// A tag unique to this moment (for ids and table names).
pub(crate) fn tag() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

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

/// `GET path`: status and body (status 0: no answer).
pub(crate) fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// A URL of `base` whose connections use a schema of their own, created
/// now (so that a test's tables start empty).
pub(crate) async fn fresh_schema(base: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let schema = format!(
        "t_{}_{:x}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (admin, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    format!(
        "{base}{}options=-csearch_path%3D{schema}",
        if base.contains('?') { '&' } else { '?' }
    )
}

/// A Redis database of this test's own (`FLUSHDB` first): the URL.
pub(crate) fn fresh_redis_db(base: &str, db: u8) -> String {
    use std::io::{Read, Write};
    let host = base
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let url = format!("redis://{host}/{db}");
    let mut s = std::net::TcpStream::connect(&host).expect("redis");
    s.write_all(format!("SELECT {db}\r\nFLUSHDB\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.windows(5).filter(|w| w == b"+OK\r\n").count() < 2 {
        let n = s.read(&mut buf).expect("redis answers");
        assert!(n > 0, "redis closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    url
}
