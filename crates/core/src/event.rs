//! Domain events as they arrive from the `domain.events` exchange, parsed once at the edge.
//!
//! A message becomes either an [`Event`] (typed name, id, project, and the payload's raw bytes) or a
//! [`Rejection`] saying what was wrong; nothing downstream looks at strings again. The catalogue of
//! names is in `event/name.rs` (titled and grouped in `event/catalogue.rs`), project codes in
//! `event/project.rs`.

use serde::Deserialize;
use serde_json::value::RawValue;

mod catalogue;
mod name;
mod project;

pub use catalogue::{CATALOGUE, Group};
pub use name::{DeliveredName, EventName, TEST_EVENT, UnknownEventName};
pub use project::{InvalidProjectCode, MAX_PROJECT_CODE, ProjectCode};

/// A domain event accepted for delivery. The payload keeps the bytes exactly as published.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's identity for de-duplication: the body's `id` (a UUID, lower-case) or the AMQP `message_id`.
    pub id: String,
    pub name: EventName,
    pub timestamp: i64,
    pub project_code: ProjectCode,
    pub team_member_id: Option<i64>,
    /// The `payload` object's bytes, untouched.
    pub payload: Box<RawValue>,
}

/// Why an incoming message was not accepted; becomes the `x-rejection-reason` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("body is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body is not a JSON event: {0}")]
    Malformed(String),
    #[error("{0}")]
    UnknownEvent(#[from] UnknownEventName),
    #[error("id: {0}")]
    BadId(String),
    #[error("no id: neither the body's id nor the message_id property is set")]
    MissingId,
    #[error("project_code: {0}")]
    BadProjectCode(#[from] InvalidProjectCode),
    #[error("payload: must be a JSON object")]
    PayloadNotObject,
    #[error("{0}")]
    Field(String),
}

/// Longest `message_id` accepted as an event id.
const MAX_MESSAGE_ID: usize = 255;

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    event_name: Option<&'a RawValue>,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(default, borrow)]
    project_code: Option<&'a RawValue>,
    #[serde(default, borrow)]
    team_member_id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

/// Parses one field, naming it in the rejection when it is missing or of the wrong type.
fn field<'a, T: Deserialize<'a>>(
    name: &str,
    raw: Option<&'a RawValue>,
    expected: &str,
) -> Result<T, Rejection> {
    let raw = raw.ok_or_else(|| Rejection::Field(format!("{name}: missing")))?;
    serde_json::from_str(raw.get())
        .map_err(|_| Rejection::Field(format!("{name}: expected {expected}")))
}

impl Event {
    /// Parses one message body. `message_id` is the AMQP property, used when the body has no `id`.
    pub fn parse(body: &[u8], message_id: Option<&str>, limit: usize) -> Result<Event, Rejection> {
        if body.len() > limit {
            return Err(Rejection::TooLarge {
                size: body.len(),
                limit,
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| Rejection::NotUtf8)?;
        let wire: Wire<'_> =
            serde_json::from_str(text).map_err(|e| Rejection::Malformed(e.to_string()))?;
        let name: std::borrow::Cow<'_, str> = field("event_name", wire.event_name, "a string")?;
        let name: EventName = name.parse()?;
        let timestamp: i64 = field("timestamp", wire.timestamp, "an integer (Unix seconds)")?;
        let project_code: String = field("project_code", wire.project_code, "a string")?;
        let project_code = ProjectCode::parse(project_code)?;
        let team_member_id: Option<i64> = match wire.team_member_id {
            None => None,
            raw => field("team_member_id", raw, "an integer or null")?,
        };
        let payload = wire
            .payload
            .ok_or_else(|| Rejection::Field("payload: missing".into()))?;
        if !payload.get().starts_with('{') {
            return Err(Rejection::PayloadNotObject);
        }
        let id = match wire.id.filter(|raw| raw.get() != "null") {
            Some(raw) => {
                let id: std::borrow::Cow<'_, str> = field("id", Some(raw), "a UUID string")?;
                uuid::Uuid::parse_str(&id)
                    .map_err(|_| Rejection::BadId(format!("{:?} is not a UUID", truncate(&id))))?
                    .to_string()
            }
            None => match message_id {
                Some(mid)
                    if !mid.is_empty()
                        && mid.len() <= MAX_MESSAGE_ID
                        && !mid.chars().any(char::is_control) =>
                {
                    match uuid::Uuid::parse_str(mid) {
                        Ok(uuid) => uuid.to_string(),
                        Err(_) => mid.to_owned(),
                    }
                }
                Some(_) => {
                    return Err(Rejection::BadId(format!(
                        "message_id must be 1 to {MAX_MESSAGE_ID} bytes without control characters"
                    )));
                }
                None => return Err(Rejection::MissingId),
            },
        };
        Ok(Event {
            id,
            name,
            timestamp,
            project_code,
            team_member_id,
            payload: payload.to_owned(),
        })
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
