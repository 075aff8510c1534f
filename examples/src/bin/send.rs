//! Sends one signed delivery, the way Plugipay does, and prints the answer.
//!
//! ```text
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin send -- \
//!     [URL] [--type TYPE] [--id ID] [--stale] [--tamper]
//! ```
//!
//! `URL` defaults to `http://127.0.0.1:$PORT/webhooks/plugipay` (`PORT` default 3000).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use plugipay_webhook::testing::TestDelivery;

fn usage() -> ! {
    eprintln!("usage: send [http://HOST:PORT/PATH] [--type TYPE] [--id ID] [--stale] [--tamper]");
    std::process::exit(2);
}

fn main() {
    let secret = match std::env::var("PLUGIPAY_WEBHOOK_SECRET") {
        Ok(s) if !s.trim().is_empty() => s.split(',').next().unwrap_or_default().trim().to_owned(),
        _ => {
            eprintln!("error: PLUGIPAY_WEBHOOK_SECRET is not set");
            std::process::exit(2);
        }
    };
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let mut url = format!("http://127.0.0.1:{port}/webhooks/plugipay");
    let mut event_type = "plugipay.invoice.paid.v1".to_owned();
    let mut id = None;
    let (mut stale, mut tamper) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--type" => event_type = args.next().unwrap_or_else(|| usage()),
            "--id" => id = Some(args.next().unwrap_or_else(|| usage())),
            "--stale" => stale = true,
            "--tamper" => tamper = true,
            "-h" | "--help" => usage(),
            u if u.starts_with("http://") => url = u.to_owned(),
            _ => usage(),
        }
    }
    let Some(rest) = url.strip_prefix("http://") else {
        usage()
    };
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));

    let mut delivery = TestDelivery::new(&secret, &event_type).object(serde_json::json!({
        "id": "inv_01HXEXAMPLE", "total": 4200, "currency": "usd", "amount": 4200
    }));
    if let Some(id) = id {
        delivery = delivery.id(id);
    }
    if stale {
        let at = delivery.signed_at();
        delivery = delivery.timestamp(at - 600);
    }
    let event_id = delivery.event_id().to_owned();
    let (body, header) = delivery.into_parts();
    let mut body = body.to_vec();
    if tamper {
        body = String::from_utf8_lossy(&body)
            .replace("4200", "1")
            .into_bytes();
    }

    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         X-Plugipay-Signature: {header}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let result = TcpStream::connect(host).and_then(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(&request)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        Ok(resp)
    });
    match result {
        Ok(resp) => {
            let text = String::from_utf8_lossy(&resp);
            let status = text.lines().next().unwrap_or_default();
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            println!("{event_id} {event_type} -> {status} {body}");
            let ok = status.split(' ').nth(1).is_some_and(|c| c.starts_with('2'));
            std::process::exit(if ok { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("error: {url}: {e}");
            std::process::exit(1);
        }
    }
}
