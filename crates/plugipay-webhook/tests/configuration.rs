//! Secrets from the environment: the variable, the file variant for Docker
//! and Kubernetes secrets, and the usual mistakes — warned about by position,
//! never by value. One test, because it changes the process environment.

use std::sync::{Arc, Mutex};

use plugipay_webhook::{testing, Verifier, SECRET_ENV_VAR, SECRET_FILE_ENV_VAR};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `Verifier::from_env()` with the warnings it logged.
fn from_env() -> (Result<Verifier, String>, String) {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, || {
        Verifier::from_env().map_err(|e| e.to_string())
    });
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    (result, logs)
}

fn accepts(v: &Verifier, secret: &str) -> bool {
    let body = br#"{"id":"evt_c","type":"t.v1"}"#;
    let t = v.now();
    v.verify_at(&body[..], Some(&testing::sign_header(secret, t, body)), t)
        .is_ok()
}

#[test]
fn secrets_from_the_variable_or_a_file_with_mistakes_warned_about() {
    let dir = std::env::temp_dir().join(format!("plugipay-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    let set = |k: &str, v: Option<&str>| match v {
        Some(v) => std::env::set_var(k, v),
        None => std::env::remove_var(k),
    };

    // The file variant: its trailing newline trimmed.
    std::fs::write(&file, "whsec_from_file\n").unwrap();
    set(SECRET_ENV_VAR, None);
    set(SECRET_FILE_ENV_VAR, Some(file.to_str().unwrap()));
    let (v, logs) = from_env();
    let v = v.expect("the file is read");
    assert!(accepts(&v, "whsec_from_file"));
    assert!(logs.is_empty(), "no warning for a plain file: {logs}");

    // A rotation in a file, one secret per line (CRLF too).
    std::fs::write(&file, "whsec_new\r\nwhsec_old\r\n").unwrap();
    let (v, _) = from_env();
    let v = v.unwrap();
    assert_eq!(v.secret_count(), 2);
    assert!(accepts(&v, "whsec_old"));

    // An unreadable or empty file, and both variables at once, are errors.
    std::fs::write(&file, "\n").unwrap();
    assert!(from_env().0.unwrap_err().contains("holds no secret"));
    set(SECRET_FILE_ENV_VAR, Some("/nonexistent/plugipay-secret"));
    assert!(from_env()
        .0
        .unwrap_err()
        .contains("cannot read the secret file"));
    set(SECRET_ENV_VAR, Some("whsec_x"));
    assert!(from_env().0.unwrap_err().contains("both"));
    set(SECRET_FILE_ENV_VAR, None);

    // Quotes kept by `docker --env-file`: warned about, never shown.
    set(SECRET_ENV_VAR, Some("\"whsec_quoted_value\""));
    let (v, logs) = from_env();
    assert!(!accepts(&v.unwrap(), "whsec_quoted_value"));
    assert!(logs.contains("wrapped in quotes"), "{logs}");
    assert!(!logs.contains("quoted_value"), "the value leaked: {logs}");

    // Whitespace around a secret: trimmed, and warned about.
    set(SECRET_ENV_VAR, Some(" whsec_spaced_value ,whsec_b"));
    let (v, logs) = from_env();
    assert!(accepts(&v.unwrap(), "whsec_spaced_value"));
    assert!(
        logs.contains("secret #0") && logs.contains("whitespace"),
        "{logs}"
    );
    assert!(!logs.contains("spaced_value"), "the value leaked: {logs}");

    // Nothing set at all names both variables.
    set(SECRET_ENV_VAR, None);
    let err = from_env().0.unwrap_err();
    assert!(
        err.contains(SECRET_ENV_VAR) && err.contains(SECRET_FILE_ENV_VAR),
        "{err}"
    );
}
