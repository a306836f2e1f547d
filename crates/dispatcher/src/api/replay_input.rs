//! The request of a bulk replay, parsed into a validated range, states and idempotency key, each
//! error naming its field.

use axum::http::HeaderValue;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};
use webhooks_core::delivery::DeliveryState;

use super::error::ApiError;
use super::input::object;

/// The longest range a replay may span.
pub const MAX_RANGE_DAYS: i64 = 31;
/// Longest idempotency key.
pub const MAX_KEY: usize = 255;
/// The header an idempotency key comes in.
pub const KEY_HEADER: &str = "idempotency-key";
/// The states a replay may name, and those it takes when it names none: every finished one.
pub const FINISHED: [DeliveryState; 3] = [
    DeliveryState::Succeeded,
    DeliveryState::Failed,
    DeliveryState::Cancelled,
];
/// `from` and `to` may also be called `since` and `until` (the names of the deliveries' search
/// and of the first draft of this call), and the key may come in the body.
const FIELDS: &[&str] = &["from", "to", "since", "until", "states", "idempotency_key"];

/// A valid replay request.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplayInput {
    /// Inclusive, to the microsecond (as stored).
    pub from: DateTime<Utc>,
    /// Exclusive, to the microsecond.
    pub to: DateTime<Utc>,
    /// Sorted, without duplicates, as stored.
    pub states: Vec<&'static str>,
    pub idempotency_key: Option<String>,
}

impl ReplayInput {
    /// The body (a JSON object) and the `Idempotency-Key` header, if any.
    pub fn parse(body: &[u8], header: Option<&HeaderValue>) -> Result<Self, ApiError> {
        let fields = object(body, FIELDS)?;
        let from = time(&fields, "from", "since")?;
        let to = time(&fields, "to", "until")?;
        if to <= from {
            return Err(ApiError::invalid("to: must be after from"));
        }
        if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
            return Err(ApiError::invalid(format!(
                "to: a replay spans at most {MAX_RANGE_DAYS} days from `from`; replay a longer time in parts"
            )));
        }
        let states = match fields.get("states") {
            None => {
                let mut all: Vec<&'static str> = FINISHED.iter().map(|s| s.as_str()).collect();
                all.sort_unstable();
                all
            }
            Some(value) => {
                states(value).map_err(|why| ApiError::invalid(format!("states: {why}")))?
            }
        };
        let from_body = match fields.get("idempotency_key") {
            None => None,
            Some(value) => Some(
                value
                    .as_str()
                    .ok_or_else(|| "must be a string".to_owned())
                    .and_then(key)
                    .map_err(|why| ApiError::invalid(format!("idempotency_key: {why}")))?,
            ),
        };
        let from_header = header
            .map(|value| {
                value
                    .to_str()
                    .map_err(|_| "must be visible ASCII".to_owned())
                    .and_then(key)
                    .map_err(|why| ApiError::invalid(format!("Idempotency-Key: {why}")))
            })
            .transpose()?;
        let idempotency_key = match (from_header, from_body) {
            (Some(a), Some(b)) if a != b => {
                return Err(ApiError::invalid(
                    "idempotency_key: differs from the Idempotency-Key header; give one",
                ));
            }
            (a, b) => a.or(b),
        };
        Ok(Self {
            from,
            to,
            states,
            idempotency_key,
        })
    }

    /// Whether a replay of `from`, `to` and `states` (as stored) is what this request asks for:
    /// a repeated key must come with the same request.
    pub fn asks_for(&self, from: DateTime<Utc>, to: DateTime<Utc>, states: &[String]) -> bool {
        self.from == from && self.to == to && self.states.iter().eq(states.iter())
    }
}

/// `name` (or its other name `alias`, but not both), an RFC 3339 time, to the microsecond.
fn time(fields: &Map<String, Value>, name: &str, alias: &str) -> Result<DateTime<Utc>, ApiError> {
    let value = match (fields.get(name), fields.get(alias)) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!(
                "{alias}: the same as {name}; give one"
            )));
        }
        (Some(value), None) => value,
        (None, Some(value)) => value,
        (None, None) => return Err(ApiError::invalid(format!("{name}: required"))),
    };
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .and_then(|at| DateTime::from_timestamp_micros(at.timestamp_micros()))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "{name}: must be an RFC 3339 time, e.g. 2026-11-26T10:00:00Z"
            ))
        })
}

fn states(value: &Value) -> Result<Vec<&'static str>, String> {
    let refused = || "must be an array of succeeded, failed or cancelled".to_owned();
    let items = value.as_array().ok_or_else(refused)?;
    let mut states = Vec::with_capacity(items.len());
    for item in items {
        let state = item
            .as_str()
            .and_then(|text| text.parse::<DeliveryState>().ok())
            .ok_or_else(refused)?;
        if !state.is_finished() {
            return Err(format!(
                "{state} deliveries are still waiting for an attempt; only succeeded, failed and \
                 cancelled ones can be replayed"
            ));
        }
        states.push(state.as_str());
    }
    states.sort_unstable();
    states.dedup();
    if states.is_empty() {
        return Err("must name at least one state".into());
    }
    Ok(states)
}

/// An idempotency key: 1 to [`MAX_KEY`] printable ASCII characters.
fn key(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > MAX_KEY || !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("must be 1 to {MAX_KEY} printable ASCII characters"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, header: Option<&str>) -> Result<ReplayInput, String> {
        let header = header.map(|h| HeaderValue::from_str(h).expect("header"));
        ReplayInput::parse(body.as_bytes(), header.as_ref()).map_err(|e| format!("{e:?}"))
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("time")
    }

    #[test]
    fn takes_every_finished_state_unless_told() {
        let input = parse(
            r#"{"from":"2026-12-01T10:00:00Z","to":"2026-12-02T10:00:00.123456789+01:00"}"#,
            None,
        )
        .expect("valid");
        assert_eq!(input.from, at("2026-12-01T10:00:00Z"));
        assert_eq!(
            input.to,
            at("2026-12-02T09:00:00.123456Z"),
            "to the microsecond"
        );
        assert_eq!(input.states, ["cancelled", "failed", "succeeded"]);
        assert_eq!(input.idempotency_key, None);
        let input = parse(
            r#"{"since":"2026-12-01T10:00:00Z","until":"2026-12-01T11:00:00Z","states":["failed","failed"],"idempotency_key":"k-1"}"#,
            Some("k-1"),
        )
        .expect("valid");
        assert_eq!(input.states, ["failed"]);
        assert_eq!(input.idempotency_key.as_deref(), Some("k-1"));
        assert!(input.asks_for(
            at("2026-12-01T10:00:00Z"),
            at("2026-12-01T11:00:00Z"),
            &["failed".to_owned()]
        ));
        assert!(!input.asks_for(
            at("2026-12-01T10:00:00Z"),
            at("2026-12-01T11:00:00Z"),
            &["cancelled".to_owned(), "failed".to_owned()]
        ));
    }

    #[test]
    fn each_error_names_its_field() {
        let range = r#""from":"2026-12-01T10:00:00Z","to":"2026-12-01T11:00:00Z""#;
        for (body, header, field) in [
            (r#"{"to":"2026-12-01T11:00:00Z"}"#.to_owned(), None, "from:"),
            (r#"{"from":"2026-12-01T11:00:00Z"}"#.to_owned(), None, "to:"),
            (
                r#"{"from":"yesterday","to":"2026-12-01T11:00:00Z"}"#.to_owned(),
                None,
                "from:",
            ),
            (
                r#"{"from":"2026-12-01T11:00:00Z","to":"2026-12-01T10:00:00Z"}"#.to_owned(),
                None,
                "to: must be after",
            ),
            (
                r#"{"from":"2026-12-01T11:00:00Z","to":"2026-12-01T11:00:00Z"}"#.to_owned(),
                None,
                "to: must be after",
            ),
            (
                r#"{"from":"2026-10-01T00:00:00Z","to":"2026-12-01T00:00:00Z"}"#.to_owned(),
                None,
                "to: a replay spans at most",
            ),
            (
                r#"{"from":"2026-12-01T10:00:00Z","since":"2026-12-01T10:00:00Z","to":"2026-12-01T11:00:00Z"}"#.to_owned(),
                None,
                "since:",
            ),
            (format!(r#"{{{range},"states":["lost"]}}"#), None, "states:"),
            (format!(r#"{{{range},"states":["pending"]}}"#), None, "states: pending"),
            (format!(r#"{{{range},"states":[]}}"#), None, "states:"),
            (format!(r#"{{{range},"states":"failed"}}"#), None, "states:"),
            (format!(r#"{{{range},"colour":1}}"#), None, "colour:"),
            (format!(r#"{{{range},"idempotency_key":""}}"#), None, "idempotency_key:"),
            (format!(r#"{{{range},"idempotency_key":"a"}}"#), Some("b"), "idempotency_key:"),
            (format!("{{{range}}}"), Some(&*"k".repeat(256)), "Idempotency-Key:"),
            ("[]".to_owned(), None, "body:"),
        ] {
            let error = parse(&body, header).expect_err(&body);
            assert!(error.contains(field), "{body}: {error}");
        }
    }
}
