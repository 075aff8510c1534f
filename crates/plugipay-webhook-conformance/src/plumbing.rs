//! Test plumbing every crate's tests share: servers on threads, real
//! servers' URLs from the environment, processes that print a listening line.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A listener on `127.0.0.1`, any free port, non-blocking (ready for Tokio).
///
/// # Panics
/// When no port can be bound (the machine is out of ports).
#[must_use]
pub fn local_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("a local address");
    listener.set_nonblocking(true).expect("non-blocking");
    (listener, addr)
}

/// A free port on `127.0.0.1` (for servers that bind by themselves).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    local_listener().1.port()
}

/// Runs `serve(listener)` on a thread of its own with a two-worker Tokio
/// runtime, and returns the address it listens on. The server runs until
/// the process exits.
pub fn serve_on_thread<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (listener, addr) = local_listener();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a Tokio listener");
            serve(listener).await;
        });
    });
    addr
}

/// Waits (up to 30 s) until something accepts connections on `addr`.
///
/// # Panics
/// When nothing does in time.
pub fn wait_until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real server's URL from the environment variable `var` (set by
/// `scripts/services` through `scripts/test`), or `None` — loudly — when
/// `PLUGIPAY_TEST_NO_SERVERS=1` says on purpose that none exist.
///
/// # Panics
/// When the variable is unset and no one said so: the test would otherwise
/// pass without testing anything.
#[must_use]
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PLUGIPAY_TEST_NO_SERVERS").as_deref() == Ok("1") => {
            eprintln!("\n*** SKIPPED: {var} is unset and PLUGIPAY_TEST_NO_SERVERS=1: no real server tested ***\n");
            None
        }
        _ => panic!("{var} is unset: run the tests through scripts/test (it starts the servers), or set PLUGIPAY_TEST_NO_SERVERS=1 to skip"),
    }
}

/// A child process whose standard output arrives line by line; killed on drop.
#[derive(Debug)]
pub struct Process {
    /// The child.
    pub child: Child,
    /// Its standard output, one line at a time.
    pub lines: mpsc::Receiver<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long [`Process::spawn`] holds back the lines a process prints before
/// its ready line.
pub const READY_HOLD: Duration = Duration::from_secs(10);

impl Process {
    /// Spawns `cmd` with its standard output piped (standard error left as
    /// the command has it).
    ///
    /// # Panics
    /// When the program cannot be started.
    ///
    /// Lines a server prints before it says it is ready (`listening on …`,
    /// or `console on …`) are held back and delivered right after that line:
    /// an inbox receiver's workers may finish a stored event before the
    /// server has bound its port, and [`listening_addr`](Process::listening_addr)
    /// reads the first line. Nothing is lost; a process that prints no such
    /// line gets its early lines after [`READY_HOLD`].
    pub fn spawn(mut cmd: Command) -> Process {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
        let stdout = child.stdout.take().expect("piped stdout");
        let (raw_tx, raw) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if raw_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let ready = |l: &str| l.starts_with("listening on ") || l.starts_with("console on ");
            let until = Instant::now() + READY_HOLD;
            let mut early = Vec::new();
            loop {
                match raw.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(line) if ready(&line) => {
                        early.insert(0, line);
                        break;
                    }
                    Ok(line) => early.push(line),
                    Err(_) => break,
                }
            }
            for line in early.into_iter().chain(raw) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines }
    }

    /// Waits (up to 60 s) for the first line, which must be `listening on
    /// http://ADDR…`, and returns `ADDR`.
    ///
    /// # Panics
    /// When the first line is something else, or does not come.
    pub fn listening_addr(&self) -> SocketAddr {
        let first = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a first line on stdout");
        first
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
    }

    /// The lines printed so far, waiting `quiet` after the last one.
    pub fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(quiet) {
            out.push(l);
        }
        out
    }
}

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Up,
    /// Keeps every connection open and forwards nothing; new ones are
    /// accepted and never answered (a server that hangs).
    Silent,
    /// Closes every connection, and new ones at once (a stopped server).
    Down,
}

/// A TCP proxy in front of a real server, switched by a test to play the
/// server's failures. Runs on a thread of its own until the process exits.
#[derive(Debug)]
pub struct Proxy {
    /// Where to connect instead of the server.
    pub addr: SocketAddr,
    mode: tokio::sync::watch::Sender<Mode>,
}

impl Proxy {
    /// A proxy to `target`, forwarding.
    pub fn start(target: SocketAddr) -> Proxy {
        let (mode, watcher) = tokio::sync::watch::channel(Mode::Up);
        let addr = serve_on_thread(move |listener| async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target, watcher.clone()));
            }
        });
        Proxy { addr, mode }
    }

    /// Switches what the proxy does; connections open in another mode are
    /// dropped (except that `Up` → `Silent` keeps them, silent).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn forward(
    mut client: tokio::net::TcpStream,
    target: SocketAddr,
    mut mode: tokio::sync::watch::Receiver<Mode>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = *mode.borrow_and_update();
    match start {
        Mode::Down => return,
        Mode::Silent => {
            // Accepted, never answered: held until the mode changes.
            let _ = mode.changed().await;
            return;
        }
        Mode::Up => {}
    }
    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut a, mut b) = ([0u8; 8192], [0u8; 8192]);
    loop {
        tokio::select! {
            // The mode first: unbiased, select! picks at random among ready
            // branches, and a request written just after `set(Silent)`
            // could still be forwarded (seen in a clean-clone CI run: a
            // Redis dispatch answered Handled with the server "silent").
            biased;
            changed = mode.changed() => {
                if changed.is_err() { return; }
                if *mode.borrow_and_update() == Mode::Silent {
                    // Keep both sockets open and forward nothing more, until
                    // the mode changes again; then drop them.
                    let _ = mode.changed().await;
                }
                return;
            }
            n = client.read(&mut a) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if server.write_all(&a[..n]).await.is_err() { return },
            },
            n = server.read(&mut b) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if client.write_all(&b[..n]).await.is_err() { return },
            },
        }
    }
}

/// `url` (`scheme://user@host:port/rest`) pointed at `proxy` instead, and
/// the address it pointed at.
///
/// # Panics
/// When `url` has no resolvable `host:port`.
#[must_use]
pub fn through(url: &str, proxy: SocketAddr) -> (String, SocketAddr) {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let target = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .expect("address")
        .next()
        .expect("one address");
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("{auth}@")
    };
    (format!("{scheme}://{auth}{proxy}/{path}"), target)
}

#[cfg(test)]
mod process_tests {
    use super::*;

    /// An inbox receiver's worker may print before the server is ready:
    /// the ready line still comes first, and no line is lost.
    #[test]
    fn lines_before_the_ready_line_follow_it() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'notified evt_1'; sleep 0.2; echo 'listening on http://127.0.0.1:9'; echo 'handled evt_1'",
        ]);
        let p = Process::spawn(cmd);
        assert_eq!(p.listening_addr(), "127.0.0.1:9".parse().unwrap());
        assert_eq!(
            p.drain(Duration::from_millis(500)),
            ["notified evt_1", "handled evt_1"]
        );
    }
}
