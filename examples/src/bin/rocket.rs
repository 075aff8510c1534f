//! The Rocket receiver: `POST /webhooks/plugipay`, verified with the
//! `VerifiedEvent` data guard. Honours `PORT` (Rocket's own `ROCKET_PORT`
//! too, when `PORT` is unset).
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin rocket

use std::io::Cursor;

use plugipay_webhook_examples::{init_tracing, Config, Outcome, Receiver};
use plugipay_webhook_rocket::{catchers, VerifiedEvent};
use rocket::fairing::AdHoc;
use rocket::http::{ContentType, Status};
use rocket::response::{self, Responder};
use rocket::{Request, Response, State};

#[rocket::post("/plugipay", data = "<event>")]
async fn webhook(receiver: &State<Receiver>, event: VerifiedEvent) -> Respond {
    Respond(receiver.handle(&event).await)
}

/// A baseline for load comparisons: reads the same body, verifies nothing.
#[rocket::post("/plain", data = "<data>")]
async fn plain(data: rocket::Data<'_>) -> Status {
    use rocket::data::ToByteUnit;
    let _ = data.open(2.mebibytes()).into_bytes().await;
    Status::NoContent
}

/// SPEC.md section 7: 204, or the JSON error with `Retry-After` where due.
struct Respond(Outcome);

impl<'r> Responder<'r, 'static> for Respond {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let o = self.0;
        let mut resp = Response::build();
        resp.status(Status::new(o.status()));
        if !o.body().is_empty() {
            resp.header(ContentType::JSON)
                .sized_body(o.body().len(), Cursor::new(o.body()));
        }
        if let Some(secs) = o.retry_after() {
            resp.raw_header("Retry-After", secs.to_string());
        }
        Ok(resp.finalize())
    }
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
    let result = rocket::execute(async move {
        let rocket = rocket::custom(figment)
            .manage(config.verifier)
            .manage(Receiver::from_env_or_exit().await)
            .mount("/webhooks", rocket::routes![webhook])
            .mount("/", rocket::routes![plain])
            // The JSON catchers on the webhook base path only.
            .register("/webhooks", catchers())
            .attach(AdHoc::on_liftoff("announce", |rocket| {
                Box::pin(async move {
                    let c = rocket.config();
                    println!("listening on http://{}:{}", c.address, c.port);
                })
            }));
        rocket.launch().await
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
