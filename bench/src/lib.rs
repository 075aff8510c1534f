//! Bodies shared by the anchors benchmark: one envelope shape that Plugipay's
//! verifier, async-stripe's `construct_event` and a plain `serde_json` parse
//! all accept, padded with realistic invoice line items to a target size.

/// The instant every signature is made and checked at.
pub const NOW: i64 = 1_767_225_600;

/// The signing secret used by the HMAC-over-`"t."` schemes.
pub const SECRET: &str = "whsec_bench_0123456789abcdef";

/// An event envelope of at least `size` bytes. The type is unknown to
/// async-stripe, which then parses `data.object` into a tree, as a generic
/// webhook consumer does.
#[must_use]
pub fn body_of(size: usize) -> Vec<u8> {
    invoice(size, r"Plan \u00e9t\u00e9 seat")
}

/// The same envelope with its line items described in raw non-ASCII text
/// (French, Japanese, an emoji): about a third of the bytes are multi-byte
/// UTF-8, which every contender must validate.
#[must_use]
pub fn text_body_of(size: usize) -> Vec<u8> {
    invoice(size, "Abonnement été — プラン座席・年間契約 😀 Grüße, ¿qué tal?")
}

fn invoice(size: usize, description: &str) -> Vec<u8> {
    let mut lines = Vec::new();
    let mut i = 0;
    loop {
        lines.push(format!(
            r#"{{"id":"il_{i:08}","description":"{description} {i}","amount":{},"currency":"usd","quantity":1,"metadata":{{"k":"v","n":null}}}}"#,
            1000 + i
        ));
        let body = format!(
            r#"{{"id":"evt_01HXBENCH","object":"event","type":"plugipay.invoice.paid.v1","account_id":"acc_01HX","occurred_at":"2026-01-01T00:00:00Z","api_version":"2017-05-25","created":1767225600,"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"data":{{"object":{{"id":"inv_01H","total":4200,"lines":[{}]}}}}}}"#,
            lines.join(",")
        );
        if body.len() >= size {
            return body.into_bytes();
        }
        i += 1;
    }
}
