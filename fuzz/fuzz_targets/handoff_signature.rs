//! The sender's screening of hand-offs, `screening::check`, on messages with any `type`
//! property, routing key, body and signature header, as the consumer receives them.
//!
//! The input is read as a sequence of choices (`arbitrary::Unstructured`): the message, then how
//! its signature header is written and how one part of it is changed.
//!
//! Beyond "never panics":
//! - a message signed with `HANDOFF_KEY` or `HANDOFF_KEY_PREVIOUS` passes, whether the header
//!   comes as a long or a short string;
//! - the same message with any one byte of its body changed, another routing key or another
//!   `type` property is refused as a mismatch;
//! - any edit of the signature text (a byte replaced, inserted or removed, a cut), and any other
//!   text, is refused unless it is the message's signature by the other key the sender holds:
//!   each key's signature has exactly one accepted spelling;
//! - a signature by another key, a header of another AMQP type, or no header at all is refused,
//!   each for its own reason.
#![no_main]

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use webhooks_core::handoff_auth::{HandoffKey, HandoffKeys, Refusal, SIGNATURE_HEADER};
use webhooks_core::secret::Secret;
use webhooks_sender::screening;

const CURRENT: &str = "5f1c9e27a0b84d36e1f7a2c90b3d5e48";
const PREVIOUS: &str = "c07e4a91d2b35f86a1e0d9c7b4f2a635";
const OTHER: &str = "9d2e7b41c6a05f38e1d4b7a2c90f6e13";

fn key(value: &str) -> HandoffKey {
    HandoffKey::from_setting("HANDOFF_KEY", Some(&Secret::new(value))).expect("a strong key")
}

/// How the signature header is written.
#[derive(Clone, Copy)]
enum Header {
    Long,
    Short,
}

/// A message as the consumer receives it.
fn message(
    kind: Option<&str>,
    routing_key: &str,
    body: &[u8],
    header: Option<AMQPValue>,
) -> Delivery {
    let mut delivery = Delivery::mock(7, "".into(), routing_key.into(), false, body.to_vec());
    let mut properties = BasicProperties::default();
    if let Some(kind) = kind {
        properties = properties.with_type(kind.into());
    }
    if let Some(value) = header {
        let mut headers = FieldTable::default();
        headers.insert(SIGNATURE_HEADER.into(), value);
        properties = properties.with_headers(headers);
    }
    delivery.properties = properties;
    delivery
}

fn written(signature: &str, header: Header) -> Option<AMQPValue> {
    Some(match header {
        Header::Long => AMQPValue::LongString(LongString::from(signature.as_bytes().to_vec())),
        Header::Short => AMQPValue::ShortString(ShortString::from(signature)),
    })
}

/// A text that fits an AMQP short string (255 bytes), as a type, a routing key or a header may.
fn short(text: String) -> String {
    let mut text = text;
    while text.len() > 255 {
        text.pop();
    }
    text
}

/// Whether `text` is the message's signature by `HANDOFF_KEY` or `HANDOFF_KEY_PREVIOUS`, the only
/// two texts the sender may accept for it.
fn accepted_spelling(text: &[u8], kind: Option<&str>, routing_key: &str, body: &[u8]) -> bool {
    [CURRENT, PREVIOUS]
        .iter()
        .any(|k| key(k).sign(kind, routing_key, body).as_bytes() == text)
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let keys =
        HandoffKeys::from_settings(Some(&Secret::new(CURRENT)), Some(&Secret::new(PREVIOUS)))
            .expect("keys");
    let kind: Option<String> = u.arbitrary::<Option<String>>()?.map(short);
    let routing_key = short(u.arbitrary()?);
    let body: Vec<u8> = u.arbitrary()?;
    let header = if u.arbitrary()? {
        Header::Long
    } else {
        Header::Short
    };
    let signer = if u.arbitrary()? { CURRENT } else { PREVIOUS };
    let kind = kind.as_deref();
    let check = |kind: Option<&str>, routing_key: &str, body: &[u8], value: Option<AMQPValue>| {
        screening::check(&keys, &message(kind, routing_key, body, value))
    };

    let signature = key(signer).sign(kind, &routing_key, &body);
    assert_eq!(
        check(kind, &routing_key, &body, written(&signature, header)),
        Ok(()),
        "a signed message is refused"
    );

    if !body.is_empty() {
        let at = u.choose_index(body.len())?;
        let flip = u.int_in_range(1..=255u8)?;
        let mut changed = body.clone();
        changed[at] ^= flip;
        assert_eq!(
            check(kind, &routing_key, &changed, written(&signature, header)),
            Err(Refusal::Mismatch),
            "byte {at} of the body changed, and the signature still holds"
        );
    }
    let other_key = short(u.arbitrary()?);
    if other_key != routing_key {
        assert_eq!(
            check(kind, &other_key, &body, written(&signature, header)),
            Err(Refusal::Mismatch),
            "sent to another queue, and the signature still holds"
        );
    }
    let other_kind: Option<String> = u.arbitrary::<Option<String>>()?.map(short);
    // No `type` and an empty one are one message, as the broker carries them.
    if other_kind.as_deref().unwrap_or("") != kind.unwrap_or("") {
        assert_eq!(
            check(
                other_kind.as_deref(),
                &routing_key,
                &body,
                written(&signature, header)
            ),
            Err(Refusal::Mismatch),
            "read as another type, and the signature still holds"
        );
    }

    let mut edited = signature.clone().into_bytes();
    match u.int_in_range(0..=3u8)? {
        0 => {
            let at = u.choose_index(edited.len())?;
            edited[at] = u.arbitrary()?;
        }
        1 => {
            let at = u.int_in_range(0..=edited.len())?;
            edited.insert(at, u.arbitrary()?);
        }
        2 => {
            let at = u.choose_index(edited.len())?;
            edited.remove(at);
        }
        _ => edited.truncate(u.choose_index(edited.len())?),
    }
    let verdict = check(
        kind,
        &routing_key,
        &body,
        Some(AMQPValue::LongString(LongString::from(edited.clone()))),
    );
    if accepted_spelling(&edited, kind, &routing_key, &body) {
        assert_eq!(verdict, Ok(()));
    } else {
        assert!(
            matches!(verdict, Err(Refusal::Malformed | Refusal::Mismatch)),
            "{:?} accepted in place of {signature}",
            String::from_utf8_lossy(&edited)
        );
    }

    let forged = key(OTHER).sign(kind, &routing_key, &body);
    assert_eq!(
        check(kind, &routing_key, &body, written(&forged, header)),
        Err(Refusal::Mismatch),
        "signed by a key the sender does not hold"
    );
    assert_eq!(
        check(kind, &routing_key, &body, None),
        Err(Refusal::Missing)
    );
    assert_eq!(
        check(kind, &routing_key, &body, Some(AMQPValue::Boolean(true))),
        Err(Refusal::Missing),
        "a header that is no string is no signature"
    );
    // Any other text is refused, unless it is the message's signature by the other key the
    // sender holds: the fuzzer learns both from the comparisons it watches, and either is valid.
    let text = short(u.arbitrary()?);
    if !accepted_spelling(text.as_bytes(), kind, &routing_key, &body) {
        assert!(
            check(kind, &routing_key, &body, written(&text, header)).is_err(),
            "{text:?} accepted, and it is neither key's signature"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
