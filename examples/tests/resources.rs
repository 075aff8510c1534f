//! Resource bounds on hostile input, measured on the real example processes:
//! 64 concurrent clients each trying to stream 50 MiB at a receiver with the
//! default 1 MiB limit must not raise its peak memory past a documented bound.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use plugipay_webhook::testing;

const SECRET: &str = "whsec_resource_tests";

/// The documented bound (docs/security.md): peak RSS may grow by at most this
/// much over the idle process — the 64 bodies are each cut off at the 1 MiB
/// limit, plus buffers.
const BOUND_MIB: u64 = 192;

mod common;
use common::{Running, BINARIES};

/// VmHWM (peak resident set) and VmRSS of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Streams up to 50 MiB chunked with a valid signature header; returns the
/// status the server answered with (0 when none could be read).
fn flood(addr: SocketAddr, header: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(20)));
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let head = format!(
        "POST /webhooks/plugipay HTTP/1.1\r\nHost: x\r\nX-Plugipay-Signature: {header}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let Ok(mut writer) = s.try_clone() else {
        return 0;
    };
    let pump = std::thread::spawn(move || {
        let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
        chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
        chunk.extend_from_slice(b"\r\n");
        for _ in 0..800 {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = pump.join();
    String::from_utf8_lossy(&buf[..n])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn sixty_four_clients_streaming_50_mib_each_stay_within_the_memory_bound() {
    let header = testing::sign_header_now(SECRET, b"{}");
    for (name, bin) in BINARIES {
        let rx = Running::start(bin, SECRET, &[]);
        let pid = rx.process.child.id();
        // Warm up: one valid delivery, so the idle figure includes the runtime.
        let _ = flood(rx.addr, "t=1,v1=00");
        let (idle_peak, idle_rss) = memory_kib(pid);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| s.spawn(|| flood(rx.addr, &header)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let (peak, _) = memory_kib(pid);
        let grew_mib = peak.saturating_sub(idle_peak.max(idle_rss)) / 1024;
        let answered_413 = statuses.iter().filter(|&&s| s == 413).count();
        println!(
            "{name}: idle peak RSS {} MiB, peak under 64 x 50 MiB chunked floods {} MiB (+{grew_mib} MiB); {answered_413}/64 read a 413",
            idle_peak / 1024,
            peak / 1024
        );
        assert!(
            grew_mib <= BOUND_MIB,
            "{name}: peak RSS grew by {grew_mib} MiB, bound {BOUND_MIB} MiB"
        );
        // Every client that got an answer got 413 (others were reset after it).
        assert!(
            statuses.iter().all(|&s| s == 413 || s == 0),
            "{name}: {statuses:?}"
        );
        assert!(answered_413 > 0, "{name}: nobody read a 413");
        // And the receiver still serves.
        let (body, h) =
            plugipay_webhook::testing::TestDelivery::new(SECRET, "plugipay.payout.paid.v1")
                .into_parts();
        let req =
            plugipay_webhook_conformance::RawRequest::post("/webhooks/plugipay", body.to_vec())
                .header("X-Plugipay-Signature", h);
        let r = plugipay_webhook_conformance::send(rx.addr, &req, Duration::from_secs(15))
            .expect("served");
        assert_eq!(r.status, 204, "{name}: still serving");
    }
}
