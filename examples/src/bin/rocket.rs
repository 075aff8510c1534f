//! The Rocket receiver: `POST /webhooks/plugipay` and
//! `POST /tenants/<tenant>/webhooks/plugipay`, verified with the
//! `VerifiedEvent` data guard. Honours `PORT` (Rocket's own `ROCKET_PORT`
//! too, when `PORT` is unset).
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin rocket

use plugipay_webhook::http::Verifiers;
use plugipay_webhook_examples::{
    init_tracing, render_metrics, Config, Console, Receiver, CONSOLE_ROUTE, WEBHOOK_ROUTE,
};
use plugipay_webhook_rocket::{catchers, Dispatched, VerifiedEvent};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::State;

#[rocket::post("/webhooks/plugipay", data = "<event>")]
async fn webhook(receiver: &State<Receiver>, event: VerifiedEvent) -> Dispatched {
    receiver.handle(&event).await.into()
}

#[rocket::post("/tenants/<_tenant>/webhooks/plugipay", data = "<event>")]
async fn tenant_webhook(
    _tenant: &str,
    receiver: &State<Receiver>,
    event: VerifiedEvent,
) -> Dispatched {
    receiver.handle(&event).await.into()
}

#[rocket::get("/healthz")]
async fn healthz(
    receiver: &State<Receiver>,
) -> (Status, (rocket::http::ContentType, &'static str)) {
    let (status, body) = receiver.health().await;
    (Status::new(status), (rocket::http::ContentType::JSON, body))
}

#[rocket::get("/metrics")]
fn metrics() -> (rocket::http::ContentType, String) {
    (
        rocket::http::ContentType::new("text", "plain").with_params(("version", "0.0.4")),
        render_metrics(),
    )
}

/// A baseline for load comparisons: reads the same body, verifies nothing.
#[rocket::post("/plain", data = "<data>")]
async fn plain(data: rocket::Data<'_>) -> Status {
    use rocket::data::ToByteUnit;
    let _ = data.open(2.mebibytes()).into_bytes().await;
    Status::NoContent
}

/// The console under Rocket: a route handler for every method and path
/// under its base, turning Rocket's request into an `http` one and back.
#[derive(Clone)]
struct ConsoleRoutes(Console);

#[rocket::async_trait]
impl rocket::route::Handler for ConsoleRoutes {
    async fn handle<'r>(
        &self,
        req: &'r rocket::Request<'_>,
        data: rocket::Data<'r>,
    ) -> rocket::route::Outcome<'r> {
        use rocket::data::ToByteUnit;
        let body = match data.open(64.kibibytes()).into_bytes().await {
            Ok(body) if body.is_complete() => body.into_inner(),
            Ok(_) => return rocket::route::Outcome::Error(Status::PayloadTooLarge),
            Err(_) => return rocket::route::Outcome::Error(Status::BadRequest),
        };
        let headers: Vec<_> = req.headers().iter().collect();
        let headers = headers
            .iter()
            .map(|h| (h.name().as_str(), h.value().as_bytes()));
        let response = self
            .0
            .respond_with(
                req.method().as_str(),
                &req.uri().to_string(),
                headers,
                bytes::Bytes::from(body),
            )
            .await;
        let mut out = rocket::Response::build();
        out.status(Status::new(response.status().as_u16()));
        for (name, value) in response.headers() {
            out.raw_header_adjoin(
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            );
        }
        let body = response.into_body();
        out.sized_body(body.len(), std::io::Cursor::new(body));
        rocket::route::Outcome::Success(out.finalize())
    }
}

impl From<ConsoleRoutes> for Vec<rocket::Route> {
    fn from(routes: ConsoleRoutes) -> Vec<rocket::Route> {
        use rocket::http::Method;
        // `<path..>` matches the base itself too.
        [Method::Get, Method::Head, Method::Post]
            .into_iter()
            .map(|m| rocket::Route::new(m, "/<path..>", routes.clone()))
            .collect()
    }
}

fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let mut figment = rocket::Config::figment()
        .merge(("address", config.host.to_string()))
        .merge(("log_level", "off"))
        .merge(("cli_colors", false))
        // SIGTERM and SIGINT stop accepting and give in-flight deliveries
        // up to 30 s to finish.
        .merge(("shutdown.ctrlc", true))
        .merge(("shutdown.signals", ["term"]))
        .merge(("shutdown.grace", 30))
        .merge(("shutdown.mercy", 5));
    if std::env::var_os("PORT").is_some() || std::env::var_os("ROCKET_PORT").is_none() {
        figment = figment.merge(("port", config.port));
    }
    // Rocket manages one value per type: one source for both routes.
    let verifiers = Verifiers::by_route()
        .route(WEBHOOK_ROUTE, config.verifier.clone())
        .or(config.tenants.clone());
    let result = rocket::execute(async move {
        let receiver = Receiver::from_env_or_exit().await;
        // The inbox's console under /console, when PLUGIPAY_CONSOLE_TOKEN is set.
        let console = receiver.console_or_exit(&config);
        let mut rocket = rocket::custom(figment)
            .manage(verifiers)
            .manage(receiver.clone())
            .mount(
                "/",
                rocket::routes![webhook, tenant_webhook, plain, healthz, metrics],
            )
            // The JSON catchers on the webhook routes' bases only.
            .register("/webhooks", catchers())
            .register("/tenants", catchers())
            .attach(AdHoc::on_liftoff("announce", |rocket| {
                Box::pin(async move {
                    let c = rocket.config();
                    println!("listening on http://{}:{}", c.address, c.port);
                })
            }));
        if let Some(console) = console {
            rocket = rocket.mount(CONSOLE_ROUTE, ConsoleRoutes(console));
        }
        let launched = rocket.launch().await;
        receiver.shutdown().await;
        launched
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
