//! The shared conformance suite against a real Rocket server on a local port.

use std::net::SocketAddr;

use plugipay_webhook::Verifier;
use plugipay_webhook_conformance::plumbing::{free_port, wait_until_listening};
use plugipay_webhook_conformance::{run, Adapter, Expected, Recorder, Source};
use plugipay_webhook_rocket::{catchers, testing, VerifiedEvent};
use rocket::http::Status;
use rocket::State;

#[rocket::post("/<_path..>", data = "<event>")]
fn hook(_path: std::path::PathBuf, recorder: &State<Recorder>, event: VerifiedEvent) -> Status {
    recorder.record(&event);
    Status::NoContent
}

fn config(port: u16) -> rocket::Config {
    rocket::Config {
        address: [127, 0, 0, 1].into(),
        port,
        log_level: rocket::config::LogLevel::Off,
        shutdown: rocket::config::Shutdown {
            ctrlc: false,
            ..Default::default()
        },
        ..rocket::Config::debug_default()
    }
}

struct RocketAdapter;

impl Adapter for RocketAdapter {
    fn name(&self) -> &'static str {
        "rocket"
    }

    fn start(&self, source: Source, recorder: Recorder) -> SocketAddr {
        let port = free_port();
        let rocket = rocket::custom(config(port));
        let rocket = match source {
            Source::Verifier(v) => rocket.manage(v),
            Source::Verifiers(v) => rocket.manage(v),
            Source::None => unreachable!("a rocket without a verifier refuses to launch"),
        };
        let rocket = rocket
            .manage(recorder)
            .mount("/", rocket::routes![hook])
            .register("/", catchers());
        std::thread::spawn(move || {
            let _ = rocket::execute(rocket.launch());
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until_listening(addr);
        addr
    }

    fn start_mounted(
        &self,
        prefix: &str,
        source: Source,
        recorder: Recorder,
    ) -> Option<SocketAddr> {
        let Source::Verifiers(verifiers) = source else {
            unreachable!("the mounted server chooses per tenant")
        };
        let port = free_port();
        let rocket = rocket::custom(config(port))
            .manage(verifiers)
            .manage(recorder)
            .mount(prefix, rocket::routes![hook])
            .register("/", catchers());
        std::thread::spawn(move || {
            let _ = rocket::execute(rocket.launch());
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until_listening(addr);
        Some(addr)
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`VerifiedEvent` is a Sentinel: a rocket without a managed Verifier refuses to launch")
    }

    fn body_bytes_read_before_guards(&self) -> usize {
        // Rocket 0.5 peeks at up to 14 body bytes ("_method=delete") before
        // routing, for every request, and waits until they arrive.
        14
    }

    fn sends_continue_before_handlers(&self) -> bool {
        // Rocket reads (peeks at) the body before routing, so its server
        // sends `100 Continue` before any guard runs.
        true
    }

    fn known_deviation(&self, case: &str) -> Option<Expected> {
        // docs/http.md: rocket drops non-UTF-8 header values before any guard runs.
        (case == "vector header_non_utf8_byte").then_some(Expected::ours(400, "signature_missing"))
    }
}

#[test]
fn rocket_guard_passes_the_conformance_suite() {
    run(&RocketAdapter).assert_all_passed();
}

#[test]
fn rocket_without_a_verifier_refuses_to_launch() {
    let rocket = rocket::custom(config(free_port()))
        .manage(Recorder::default())
        .mount("/", rocket::routes![hook]);
    let err = rocket::execute(rocket.ignite()).expect_err("launch must be refused");
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::SentinelAborts(_)),
        "{err:?}"
    );
}

#[test]
fn catchers_leave_other_errors_to_rocket() {
    // A 400 that the guard did not produce (here: a plain route answering 400
    // under the same base) is rendered by Rocket's default catcher, not ours.
    #[rocket::get("/other")]
    fn other() -> Status {
        Status::BadRequest
    }
    let client = rocket::local::blocking::Client::untracked(
        rocket::custom(config(0))
            .manage(Verifier::new("whsec_x"))
            .mount("/", rocket::routes![other])
            .register("/", catchers()),
    )
    .expect("client");
    let resp = client.get("/other").dispatch();
    assert_eq!(resp.status(), Status::BadRequest);
    let body = resp.into_string().unwrap_or_default();
    assert!(
        !body.contains(r#"{"error":"#),
        "our catcher answered: {body}"
    );
}

#[test]
fn rockets_own_limits_configuration_sets_the_body_limit() {
    let figment = rocket::Config::figment()
        .merge(("log_level", "off"))
        .merge(("limits.plugipay-webhook", 64));
    let client = rocket::local::blocking::Client::tracked(
        rocket::custom(figment)
            .manage(Verifier::new("whsec_limit"))
            .manage(Recorder::default())
            .mount("/", rocket::routes![hook])
            .register("/", catchers()),
    )
    .expect("client");
    let small = plugipay_webhook::testing::TestDelivery::new("whsec_limit", "t.v1")
        .raw_body(r#"{"id":"e","type":"t.v1"}"#);
    let resp = testing::blocking(&client, small, "/hook").dispatch();
    assert_eq!(resp.status(), Status::NoContent);
    let large = plugipay_webhook::testing::TestDelivery::new("whsec_limit", "t.v1");
    let resp = testing::blocking(&client, large, "/hook").dispatch();
    assert_eq!(resp.status(), Status::PayloadTooLarge);
    assert_eq!(
        resp.into_string().as_deref(),
        Some(r#"{"error":"payload_too_large"}"#)
    );
}
