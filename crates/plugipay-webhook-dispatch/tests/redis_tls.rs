//! The Redis inbox and store on a TLS-only Redis with a password, started
//! by `scripts/services` with a CA of its own: `rediss://` trusting the CA
//! through `SSL_CERT_FILE`, ACL credentials in the URL; a wrong password,
//! plaintext against the TLS port and an untrusted CA each fail in one line
//! within the timeout, never showing the password. A binary of its own:
//! `SSL_CERT_FILE` is set before any thread could read the environment.

#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_dispatch::inbox::{Inbox, RedisInbox, State};
use plugipay_webhook_dispatch::{Outcome, RedisStore};

const SECRET: &str = "whsec_redis_tls";
const PASSWORD: &str = "plugipay-test-pw";

fn event(id: &str) -> WebhookEvent {
    TestDelivery::new(SECRET, "plugipay.invoice.paid.v1")
        .id(id)
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies")
}

async fn refused(url: &str) -> (String, Duration) {
    let started = Instant::now();
    let inbox = RedisInbox::builder(url)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect_err("refused")
        .to_string();
    let store = RedisStore::builder(url)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect_err("refused")
        .to_string();
    assert_eq!(inbox.lines().count(), 1, "{inbox}");
    for said in [&inbox, &store] {
        assert!(!said.contains(PASSWORD), "a password shown: {said}");
    }
    (inbox, started.elapsed())
}

#[test]
fn rediss_with_a_password_trusting_ssl_cert_file() {
    let Some(url) = server_url("PLUGIPAY_TEST_REDIS_TLS_URL") else {
        return;
    };
    let dir = std::env::var("PLUGIPAY_TEST_TLS_DIR").expect("scripts/services sets it");
    // Before the runtime's threads exist: nothing else reads it concurrently.
    // (Edition 2021: set_var is safe to call; this is its one caller.)
    std::env::set_var("SSL_CERT_FILE", format!("{dir}/ca.pem"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let prefix = format!("tls_test_{}", std::process::id());
            let inbox = Inbox::builder(
                RedisInbox::builder(&url)
                    .prefix(&prefix)
                    .connect()
                    .await
                    .expect("rediss:// with the CA from SSL_CERT_FILE"),
            )
            .on("plugipay.invoice.paid.v1", |_e: WebhookEvent| async {
                Ok::<_, std::convert::Infallible>(())
            })
            .build()
            .expect("inbox");
            for i in 0..20 {
                assert_eq!(
                    inbox.receive(&event(&format!("{prefix}_{i}"))).await,
                    Outcome::Stored
                );
            }
            let workers = inbox.start_workers(2);
            let deadline = Instant::now() + Duration::from_secs(20);
            while inbox.stats().await.unwrap().count(State::Done) < 20 {
                assert!(Instant::now() < deadline, "not all done");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            workers.shutdown(Duration::from_secs(5)).await;
            RedisStore::connect(&url).await.expect("store over TLS");

            let (said, took) = refused(&url.replace(PASSWORD, "not-the-password")).await;
            assert!(said.contains("authentication failed"), "{said}");
            assert!(took < Duration::from_secs(5), "{took:?}");
            let (said, took) = refused(&url.replace("rediss://", "redis://")).await;
            assert!(
                took < Duration::from_secs(5),
                "plaintext: {said} after {took:?}"
            );
            // A hostname the certificate is not for.
            let (said, took) = refused(&url.replace("@localhost:", "@127.0.0.1:")).await;
            assert!(said.contains("certificate"), "{said}");
            assert!(took < Duration::from_secs(5), "{took:?}");
        });
}
