//! `WebhookInput::parse` on arbitrary request bodies of the management API.
//!
//! Beyond "never panics": a URL the API accepts is stored as its normalised text, which the sender
//! parses again before every attempt. Reading that text back must give the same URL and pass the
//! same checks, or what was checked at creation would not be what gets called.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_core::destination::Destinations;
use webhooks_dispatcher::api::input::WebhookInput;

fuzz_target!(|data: &[u8]| {
    let destinations = Destinations::default();
    let Ok(input) = WebhookInput::parse(data, &destinations) else {
        return;
    };
    if let Some(events) = &input.events {
        assert!(!events.is_empty(), "accepted an empty event set");
    }
    if let Some(url) = input.url {
        let again = serde_json::json!({ "url": url }).to_string();
        let reread = WebhookInput::parse(again.as_bytes(), &destinations)
            .unwrap_or_else(|e| panic!("stored url {url:?} is refused when read back: {e:?}"));
        assert_eq!(reread.url.as_deref(), Some(url.as_str()), "stored url is not stable");
    }
});
