//! The header rules (SPEC.md section 2) on arbitrary bytes: one to four
//! header fields, separated by `\n` in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plugipay_webhook::{ErrorCode, SignatureHeader, MAX_HEADER_LEN, MAX_SIGNATURES};

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == b'\n').take(4).collect()
    };
    match SignatureHeader::from_values(values.iter().copied()) {
        Ok(h) => {
            // Accepted only with exactly one field, within the length limit,
            // visible ASCII / SP / HTAB only, a t= item and 1-32 v1= items.
            assert_eq!(values.len(), 1);
            let v = values[0];
            assert!(v.len() <= MAX_HEADER_LEN);
            assert!(v
                .iter()
                .all(|&b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b)));
            assert!((1..=MAX_SIGNATURES).contains(&h.signature_count()));
            assert!(h.timestamp() >= 0);
            let text = std::str::from_utf8(v).expect("ASCII");
            assert!(text.contains("t") && text.contains("v1"));
        }
        Err(e) => assert!(
            matches!(
                e.code(),
                ErrorCode::SignatureMissing | ErrorCode::SignatureMalformed
            ),
            "header rules only give missing or malformed, got {e}"
        ),
    }
});
