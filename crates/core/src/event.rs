//! Domain events as they arrive from the `domain.events` exchange, parsed once at the edge.
//!
//! A message becomes either an [`Event`] (typed name, id, project, and the payload's raw bytes) or a
//! [`Rejection`] saying what was wrong; nothing downstream looks at strings again.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;

macro_rules! event_names {
    ($($variant:ident => $name:literal,)*) => {
        /// The event catalogue: every name a webhook can subscribe to.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventName { $($variant,)* }

        impl EventName {
            /// Every event of the catalogue, in catalogue order.
            pub const ALL: &'static [EventName] = &[$(EventName::$variant,)*];

            /// The wire name, e.g. `run.started`.
            pub const fn as_str(self) -> &'static str {
                match self { $(EventName::$variant => $name,)* }
            }
        }

        impl FromStr for EventName {
            type Err = UnknownEventName;
            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok(EventName::$variant),)*
                    _ => Err(UnknownEventName(name.chars().take(100).collect())),
                }
            }
        }
    };
}

event_names! {
    CaseCreated => "case.created",
    CaseUpdated => "case.updated",
    CaseDeleted => "case.deleted",
    CaseCloned => "case.cloned",
    SuiteCreated => "suite.created",
    SuiteUpdated => "suite.updated",
    SuiteDeleted => "suite.deleted",
    SuiteCloned => "suite.cloned",
    PlanCreated => "plan.created",
    PlanUpdated => "plan.updated",
    PlanDeleted => "plan.deleted",
    SharedStepCreated => "shared_step.created",
    SharedStepUpdated => "shared_step.updated",
    SharedStepDeleted => "shared_step.deleted",
    MilestoneCreated => "milestone.created",
    MilestoneUpdated => "milestone.updated",
    MilestoneDeleted => "milestone.deleted",
    CustomFieldCreated => "custom_field.created",
    CustomFieldUpdated => "custom_field.updated",
    CustomFieldDeleted => "custom_field.deleted",
    RunStarted => "run.started",
    RunAborted => "run.aborted",
    RunCompleted => "run.completed",
    RunDeleted => "run.deleted",
    RunUpdated => "run.updated",
    RunReportChanged => "run.report_changed",
    DefectCreated => "defect.created",
    DefectResolved => "defect.resolved",
    DefectDeleted => "defect.deleted",
    DefectUpdated => "defect.updated",
    ReviewCreated => "review.created",
    ReviewUpdated => "review.updated",
    ReviewApprovalStatusChanged => "review.approval_status_changed",
    ReviewReviewerAdded => "review.reviewer_added",
    ReviewReviewerRemoved => "review.reviewer_removed",
    ReviewMerged => "review.merged",
    ReviewReopened => "review.reopened",
    ReviewCommented => "review.commented",
    ReviewDeclined => "review.declined",
    ReviewDeleted => "review.deleted",
    ResultCreated => "result.created",
    ResultUpdated => "result.updated",
    ResultDeleted => "result.deleted",
}

impl EventName {
    /// The family before the dot (`run` for `run.started`): a small, fixed metric label.
    pub fn family(self) -> &'static str {
        let name = self.as_str();
        name.split_once('.').map_or(name, |(family, _)| family)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event_name {0:?}")]
pub struct UnknownEventName(pub String);

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

/// Longest project code accepted, in characters.
pub const MAX_PROJECT_CODE: usize = 64;

/// A project's code, as events carry it and as the API's paths name it: 1 to
/// [`MAX_PROJECT_CODE`] characters, none of them control characters (storage cannot hold a NUL,
/// and a code is shown and compared as written). [`ProjectCode::parse`] is the one check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectCode(String);

/// Why a text is not a [`ProjectCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {MAX_PROJECT_CODE} characters, none of them control characters")]
pub struct InvalidProjectCode;

impl ProjectCode {
    pub fn parse(code: impl Into<String>) -> Result<Self, InvalidProjectCode> {
        let code = code.into();
        if code.is_empty()
            || code.chars().count() > MAX_PROJECT_CODE
            || code.chars().any(char::is_control)
        {
            return Err(InvalidProjectCode);
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for ProjectCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn sample() -> String {
        r#"{"id":"7F0C2C8E-3A4B-4D6E-9A51-0E8F3C2B1A77","event_name":"run.started","timestamp":1650540069,"project_code":"DEMO","team_member_id":40,"payload":{ "id": 1, "title":"Test run" }}"#.to_owned()
    }

    #[test]
    fn catalogue_has_43_unique_names() {
        assert_eq!(EventName::ALL.len(), 43);
        let mut names: Vec<_> = EventName::ALL.iter().map(|n| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 43);
        for name in EventName::ALL {
            assert_eq!(name.as_str().parse::<EventName>(), Ok(*name));
        }
    }

    #[test]
    fn parses_contract_example_keeping_payload_bytes() {
        let event = Event::parse(sample().as_bytes(), None, LIMIT).expect("valid");
        assert_eq!(event.id, "7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77");
        assert_eq!(event.name, EventName::RunStarted);
        assert_eq!(event.timestamp, 1_650_540_069);
        assert_eq!(event.project_code.as_str(), "DEMO");
        assert_eq!(event.team_member_id, Some(40));
        assert_eq!(event.payload.get(), r#"{ "id": 1, "title":"Test run" }"#);
    }

    #[test]
    fn team_member_may_be_null_or_absent() {
        let body = r#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"case.created","timestamp":1,"project_code":"P","team_member_id":null,"payload":{}}"#;
        assert_eq!(
            Event::parse(body.as_bytes(), None, LIMIT).map(|e| e.team_member_id),
            Ok(None)
        );
        let body = r#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"case.created","timestamp":1,"project_code":"P","payload":{}}"#;
        assert_eq!(
            Event::parse(body.as_bytes(), None, LIMIT).map(|e| e.team_member_id),
            Ok(None)
        );
    }

    #[test]
    fn id_falls_back_to_message_id() {
        let body = r#"{"event_name":"case.created","timestamp":1,"project_code":"P","payload":{}}"#;
        let event = Event::parse(body.as_bytes(), Some("msg-1"), LIMIT).expect("valid");
        assert_eq!(event.id, "msg-1");
        assert_eq!(
            Event::parse(body.as_bytes(), None, LIMIT).err(),
            Some(Rejection::MissingId)
        );
    }

    #[test]
    fn rejects_each_kind_of_bad_input() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe", "not UTF-8"),
            (b"not json", "not a JSON event"),
            (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.exploded","timestamp":1,"project_code":"P","payload":{}}"#, "unknown event_name"),
            (br#"{"id":"nope","event_name":"run.started","timestamp":1,"project_code":"P","payload":{}}"#, "id:"),
            (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":"x","project_code":"P","payload":{}}"#, "timestamp"),
            (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"payload":{}}"#, "project_code"),
            (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"project_code":"P","payload":[1]}"#, "payload"),
            (br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"project_code":"","payload":{}}"#, "project_code"),
        ];
        for (body, reason) in cases {
            let rejection = Event::parse(body, None, LIMIT).expect_err("must be rejected");
            assert!(
                rejection.to_string().contains(reason),
                "{rejection} should mention {reason}"
            );
        }
    }

    #[test]
    fn rejects_control_characters_that_storage_cannot_hold() {
        let body = r#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1,"project_code":"P\u0000","payload":{}}"#;
        assert_eq!(
            Event::parse(body.as_bytes(), None, LIMIT).err(),
            Some(Rejection::BadProjectCode(InvalidProjectCode))
        );
        let body = r#"{"event_name":"run.started","timestamp":1,"project_code":"P","payload":{}}"#;
        assert!(matches!(
            Event::parse(body.as_bytes(), Some("a\0b"), LIMIT),
            Err(Rejection::BadId(_))
        ));
    }

    #[test]
    fn a_project_code_is_one_to_max_characters_without_control_characters() {
        for good in ["P", "DEMO", "a b", "проект", &"é".repeat(MAX_PROJECT_CODE)] {
            assert_eq!(
                ProjectCode::parse(good).map(ProjectCode::into_string),
                Ok(good.to_owned())
            );
        }
        let too_long = "é".repeat(MAX_PROJECT_CODE + 1);
        for bad in ["", &too_long, "P\0", "P\n", "\tP", "P\u{7f}", "P\u{85}"] {
            assert_eq!(ProjectCode::parse(bad), Err(InvalidProjectCode), "{bad:?}");
        }
    }

    #[test]
    fn rejects_oversized_body_before_parsing() {
        let body = sample();
        let rejection = Event::parse(body.as_bytes(), None, 10).expect_err("too large");
        assert!(matches!(rejection, Rejection::TooLarge { limit: 10, .. }));
    }

    #[test]
    fn family_is_the_prefix() {
        assert_eq!(EventName::ReviewApprovalStatusChanged.family(), "review");
        assert_eq!(EventName::SharedStepDeleted.family(), "shared_step");
    }
}
