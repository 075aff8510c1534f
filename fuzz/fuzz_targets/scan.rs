//! Differential: the envelope scan with the SIMD UTF-8 validator and with the
//! scalar one (the reference) on arbitrary bytes — same envelope, or the
//! same error with the same reason and offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plugipay_webhook::__private::scan_both;

fuzz_target!(|data: &[u8]| {
    let (scalar, simd) = scan_both(data);
    assert_eq!(scalar, simd, "the SIMD and scalar paths disagree");
    if std::str::from_utf8(data).is_err() {
        assert!(scalar.contains("UTF-8"), "invalid UTF-8 not named: {scalar}");
    } else if scalar.starts_with("Ok") {
        // Whatever the scan accepts, serde_json accepts.
        assert!(serde_json::from_slice::<serde_json::Value>(data).is_ok());
    }
});
