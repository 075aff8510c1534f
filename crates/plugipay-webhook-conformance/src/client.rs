//! A deliberately small HTTP/1.1 client over a plain TCP socket.
//!
//! The suite needs requests no polite client sends: two header fields of the
//! same name, raw non-ASCII bytes in a header, a `Content-Length` that
//! promises more than is sent, a chunked body that never ends. So it writes
//! the bytes itself and parses the response itself.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// Whether the server closed the connection after the response.
    pub closed: bool,
    /// Interim (1xx) responses received before this one, such as `100
    /// Continue`.
    pub interim: Vec<u16>,
}

impl RawResponse {
    /// The first value of a header, as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The body as text.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the body goes out.
#[derive(Debug, Clone)]
pub enum BodyPlan {
    /// All of it, with a `Content-Length` of its length.
    Full(Vec<u8>),
    /// These bytes under a declared `Content-Length` that may differ; after
    /// sending them the client keeps the connection open and waits.
    Declared {
        /// The declared length.
        content_length: u64,
        /// What is actually sent.
        sent: Vec<u8>,
    },
    /// These bytes under a declared `Content-Length` larger than them; then
    /// the client closes its sending side (it "disconnects" mid-body) and
    /// still reads the answer.
    Truncated {
        /// The declared length.
        content_length: u64,
        /// What is actually sent before the half-close.
        sent: Vec<u8>,
    },
    /// The whole body with its `Content-Length`, one byte every `every`.
    Trickle {
        /// The body.
        body: Vec<u8>,
        /// Pause between bytes.
        every: Duration,
    },
    /// `Transfer-Encoding: chunked`, in chunks of `chunk` bytes, ending with
    /// the terminating chunk.
    Chunked {
        /// The body.
        body: Vec<u8>,
        /// Chunk size.
        chunk: usize,
    },
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Request target, e.g. `/webhook`.
    pub path: String,
    /// Extra header fields, raw (name, value bytes).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: BodyPlan,
    /// Send `Connection: close`.
    pub close: bool,
}

impl RawRequest {
    /// A `POST` to `path` with a full body and `Connection: close`.
    #[must_use]
    pub fn post(path: &str, body: Vec<u8>) -> RawRequest {
        RawRequest {
            path: path.to_owned(),
            headers: Vec::new(),
            body: BodyPlan::Full(body),
            close: true,
        }
    }

    /// Adds a header field (repeatable: the same name twice gives two fields).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> RawRequest {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn head(&self) -> Vec<u8> {
        let mut h = format!("POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", self.path).into_bytes();
        for (name, value) in &self.headers {
            h.extend_from_slice(name.as_bytes());
            h.extend_from_slice(b": ");
            h.extend_from_slice(value);
            h.extend_from_slice(b"\r\n");
        }
        match &self.body {
            BodyPlan::Full(b) => {
                h.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes())
            }
            BodyPlan::Declared { content_length, .. }
            | BodyPlan::Truncated { content_length, .. } => {
                h.extend_from_slice(format!("Content-Length: {content_length}\r\n").as_bytes());
            }
            BodyPlan::Trickle { body, .. } => {
                h.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            BodyPlan::Chunked { .. } => h.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        if self.close {
            h.extend_from_slice(b"Connection: close\r\n");
        }
        h.extend_from_slice(b"\r\n");
        h
    }
}

/// Sends `req` to `addr` and reads the response (at most `timeout` in all).
pub fn send(addr: SocketAddr, req: &RawRequest, timeout: Duration) -> io::Result<RawResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(timeout))?;
    let head = req.head();
    match &req.body {
        BodyPlan::Full(body) => {
            // Write from another thread: a server that answers early (413)
            // must not deadlock us on a full socket buffer.
            let mut writer = stream.try_clone()?;
            let mut all = head;
            all.extend_from_slice(body);
            let handle = std::thread::spawn(move || {
                let _ = writer.write_all(&all);
            });
            let resp = read_response(&mut stream, timeout);
            let _ = handle.join();
            resp
        }
        BodyPlan::Declared { sent, .. } => {
            stream.write_all(&head)?;
            stream.write_all(sent)?;
            read_response(&mut stream, timeout)
        }
        BodyPlan::Truncated { sent, .. } => {
            stream.write_all(&head)?;
            stream.write_all(sent)?;
            stream.shutdown(Shutdown::Write)?;
            read_response(&mut stream, timeout)
        }
        BodyPlan::Trickle { body, every } => {
            stream.write_all(&head)?;
            let mut writer = stream.try_clone()?;
            let (body, every) = (body.clone(), *every);
            let handle = std::thread::spawn(move || {
                for b in body {
                    if writer.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(every);
                }
            });
            let resp = read_response(&mut stream, timeout);
            let _ = stream.shutdown(Shutdown::Both);
            let _ = handle.join();
            resp
        }
        BodyPlan::Chunked { body, chunk } => {
            let mut writer = stream.try_clone()?;
            let body = body.clone();
            let chunk = (*chunk).max(1);
            let handle = std::thread::spawn(move || {
                let mut out = head;
                for piece in body.chunks(chunk) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                    if writer.write_all(&out).is_err() {
                        return;
                    }
                    out.clear();
                }
                out.extend_from_slice(b"0\r\n\r\n");
                let _ = writer.write_all(&out);
            });
            let resp = read_response(&mut stream, timeout);
            let _ = stream.shutdown(Shutdown::Both);
            let _ = handle.join();
            resp
        }
    }
}

fn read_response(stream: &mut TcpStream, timeout: Duration) -> io::Result<RawResponse> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut eof = false;
    let mut interim = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            if eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a response head ({} bytes)",
                        buf.len()
                    ),
                ));
            }
            eof = fill(stream, &mut buf, deadline)?;
        };
        // An interim response (`100 Continue`): note it, read the final one.
        let status = parse_status(&buf[..head_end])?;
        if (100..200).contains(&status) {
            interim.push(status);
            buf.drain(..head_end + 4);
            continue;
        }
        let mut resp = read_final(stream, buf, head_end, eof, deadline)?;
        resp.interim = interim;
        return Ok(resp);
    }
}

fn parse_status(head: &[u8]) -> io::Result<u16> {
    let head = String::from_utf8_lossy(head);
    let status_line = head.split("\r\n").next().unwrap_or_default();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })
}

fn read_final(
    stream: &mut TcpStream,
    buf: Vec<u8>,
    head_end: usize,
    mut eof: bool,
    deadline: Instant,
) -> io::Result<RawResponse> {
    let status = parse_status(&buf[..head_end])?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: Vec<(String, Vec<u8>)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let body = if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < len && !eof {
            eof = fill(stream, &mut rest, deadline)?;
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some(body) = dechunk(&rest) {
                break body;
            }
            if eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated chunked body",
                ));
            }
            eof = fill(stream, &mut rest, deadline)?;
        }
    } else if status == 204 || status == 304 {
        Vec::new()
    } else {
        while !eof {
            eof = fill(stream, &mut rest, deadline)?;
        }
        rest
    };
    let closed = eof || is_closed(stream);
    Ok(RawResponse {
        status,
        headers,
        body,
        closed,
        interim: Vec::new(),
    })
}

/// Reads more bytes; `Ok(true)` at end of stream (a reset counts as the end).
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<bool> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no complete response in time",
        ));
    }
    stream.set_read_timeout(Some(left))?;
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => Ok(true),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete response in time",
            ))
        }
        Err(e) => Err(e),
    }
}

/// Whether the server closes the connection within a grace period (actix-web
/// lingers up to its client-disconnect timeout, 1 s by default, discarding an
/// unread body before it closes, so the response is not lost to a reset).
fn is_closed(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let mut b = [0u8; 1];
    match stream.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
