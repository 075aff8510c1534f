//! The Rocket receiver: `POST /webhooks/plugipay`, verified with the
//! `VerifiedEvent` data guard. Honours `PORT` (Rocket's own `ROCKET_PORT`
//! too, when `PORT` is unset).
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin rocket

use plugipay_webhook_examples::{init_tracing, Config, Receiver};
use plugipay_webhook_rocket::{catchers, VerifiedEvent};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::State;

#[rocket::post("/plugipay", data = "<event>")]
fn plugipay_webhook(receiver: &State<Receiver>, event: VerifiedEvent) -> Status {
    receiver.handle(&event);
    Status::NoContent
}

fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let mut figment = rocket::Config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("log_level", "off"))
        .merge(("cli_colors", false));
    if std::env::var_os("PORT").is_some() || std::env::var_os("ROCKET_PORT").is_none() {
        figment = figment.merge(("port", config.port));
    }
    let rocket = rocket::custom(figment)
        .manage(config.verifier)
        .manage(Receiver::new())
        .mount("/webhooks", rocket::routes![plugipay_webhook])
        // The JSON catchers on the webhook base path only.
        .register("/webhooks", catchers())
        .attach(AdHoc::on_liftoff("announce", |rocket| {
            Box::pin(async move {
                let c = rocket.config();
                println!("listening on http://{}:{}", c.address, c.port);
            })
        }));
    if let Err(e) = rocket::execute(rocket.launch()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
