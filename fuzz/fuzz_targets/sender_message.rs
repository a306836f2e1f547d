//! `SenderMessage` as read from the `webhooks.deliveries` queue, on arbitrary bytes.
//!
//! Beyond "never panics": an accepted message written out and read again is the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::messages::SenderMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<SenderMessage>(data) else {
        return;
    };
    let json = serde_json::to_vec(&message).expect("a message serialises");
    let again: SenderMessage = serde_json::from_slice(&json).expect("our own output reads back");
    assert_eq!(again, message);
});
