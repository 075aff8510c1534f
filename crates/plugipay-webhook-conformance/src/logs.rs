//! Captures every `tracing` line the process writes, at TRACE level, so the
//! suite can prove no secret or expected signature ever reaches the logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static SINK: OnceLock<Option<Sink>> = OnceLock::new();

/// Installs the capturing subscriber once per process. `false` when another
/// global subscriber was already installed (then nothing is captured).
pub(crate) fn install() -> bool {
    SINK.get_or_init(|| {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .ok()
            .map(|()| sink)
    })
    .is_some()
}

/// Everything captured so far.
pub(crate) fn captured() -> String {
    SINK.get()
        .and_then(Option::as_ref)
        .and_then(|s| {
            s.0.lock()
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .unwrap_or_default()
}
