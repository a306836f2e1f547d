//! `duration::parse`, which reads `DELIVERY_TIMEOUT`, `DISABLE_AFTER`, `RETRY_INITIAL`, `RETRY_MAX`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::duration;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = duration::parse(text);
    }
});
