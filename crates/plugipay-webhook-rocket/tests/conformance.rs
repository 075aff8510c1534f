//! The shared conformance suite against a real Rocket server on a local port.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use plugipay_webhook::Verifier;
use plugipay_webhook_conformance::{run, Adapter, Expected, Recorder};
use plugipay_webhook_rocket::{catchers, VerifiedEvent};
use rocket::http::Status;
use rocket::State;

#[rocket::post("/webhook", data = "<event>")]
fn hook(recorder: &State<Recorder>, event: VerifiedEvent) -> Status {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "rocket did not start on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct RocketAdapter;

impl Adapter for RocketAdapter {
    fn name(&self) -> &'static str {
        "rocket"
    }

    fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr {
        let verifier = verifier.expect("a rocket without a verifier refuses to launch");
        let port = free_port();
        let rocket = rocket::custom(config(port))
            .manage(verifier)
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

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`VerifiedEvent` is a Sentinel: a rocket without a managed Verifier refuses to launch")
    }

    fn body_bytes_read_before_guards(&self) -> usize {
        // Rocket 0.5 peeks at up to 14 body bytes ("_method=delete") before
        // routing, for every request, and waits until they arrive.
        14
    }

    fn known_deviation(&self, case: &str) -> Option<Expected> {
        // SPEC.md section 6: rocket drops non-UTF-8 header values before any guard runs.
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
