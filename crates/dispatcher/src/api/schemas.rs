//! The schemas of the OpenAPI document ([`super::spec`]) that are not a view's own: the error
//! shape, the request bodies (parsed field by field by [`super::input`], so described here), and
//! the closed lists of names, built from the lists the code itself uses.

use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};
use webhooks_core::delivery::DeliveryState;
use webhooks_core::event::{EventName, MAX_PROJECT_CODE};

/// Every error answer: what is wrong, starting with the field's name when a field is.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    #[schema(example = "url: must be an http or https URL")]
    pub error: String,
}

/// A name of the event catalogue, as [`EventName::ALL`] lists them.
pub struct EventNameSchema;

impl PartialSchema for EventNameSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A name of the event catalogue (`GET /api/v1/events`).",
            ))
            .enum_values(Some(EventName::ALL.iter().map(|name| name.as_str())))
            .into()
    }
}

impl ToSchema for EventNameSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventName")
    }
}

/// A delivery's state, as [`DeliveryState::ALL`] lists them.
pub struct DeliveryStateSchema;

impl PartialSchema for DeliveryStateSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "`pending` (not attempted yet), `retrying`, `succeeded`, `failed` (given up) or \
                 `cancelled` (its webhook was disabled or deleted).",
            ))
            .enum_values(Some(DeliveryState::ALL.iter().map(|state| state.as_str())))
            .into()
    }
}

impl ToSchema for DeliveryStateSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DeliveryState")
    }
}

/// A new webhook. Unknown fields are refused.
#[derive(ToSchema)]
#[schema(as = NewWebhook)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Described, not built: `WebhookInput` parses the body.
pub struct NewWebhookBody {
    /// Trimmed.
    #[schema(min_length = 1, max_length = 255)]
    title: String,
    /// An `http` or `https` URL with a host, without credentials, and not a literal address
    /// deliveries may not reach.
    #[schema(format = "uri", max_length = 2048)]
    url: String,
    /// Sent as `X-Qase-Secret` and used to sign (`webhook-signature`); no control characters; a
    /// secret starting `whsec_` must be base64 after the prefix.
    #[schema(min_length = 1, max_length = 256)]
    secret: Option<String>,
    /// Duplicates are dropped.
    #[schema(value_type = Vec<EventNameSchema>, min_items = 1)]
    events: Vec<String>,
    /// `true` when not given.
    #[serde(default)]
    enabled: bool,
    /// The team member who created it.
    created_by: Option<i64>,
}

/// A change to a webhook: any of its fields. `enabled: true` on a disabled webhook re-enables it
/// and clears its health; `enabled: false` cancels its pending deliveries; `null` clears
/// `secret` or `created_by`. Unknown fields are refused.
#[derive(ToSchema)]
#[schema(as = WebhookChange)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Described, not built: `WebhookInput` parses the body.
pub struct WebhookChangeBody {
    // Optional, not nullable: a field left out is `#[serde(default)]`, one that may be `null`
    // is an `Option`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    title: String,
    #[serde(default)]
    #[schema(format = "uri", max_length = 2048)]
    url: String,
    #[schema(min_length = 1, max_length = 256)]
    secret: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<EventNameSchema>, min_items = 1)]
    events: Vec<String>,
    #[serde(default)]
    enabled: bool,
    created_by: Option<i64>,
}

/// The query of a list that takes only a `limit` (a webhook's deliveries, its replays), described
/// for the OpenAPI document; each list reads it through its `Params`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Described, not built.
pub struct LimitQuery {
    /// How many to list, newest first: 1 to 200; 50 when not given.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A project's code in a path, as [`webhooks_core::event::ProjectCode::parse`] accepts it; any
/// other is simply not found.
pub struct ProjectCodeParam;

impl PartialSchema for ProjectCodeParam {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A project's code: 1 to 64 characters, none of them control characters.",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_PROJECT_CODE))
            .pattern(Some(r"^[^\x00-\x1F\x7F-\x9F]+$"))
            .examples([serde_json::json!("DEMO")])
            .into()
    }
}

impl ToSchema for ProjectCodeParam {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ProjectCode")
    }
}

/// A length of time in a request body: a duration in words (`24h`, `90m`, `30d`) or a whole
/// number of seconds.
pub struct DurationSchema;

impl PartialSchema for DurationSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Integer]))
            .minimum(Some(0))
            .description(Some(
                "A duration (`24h`, `90m`, `30d`) or a whole number of seconds.",
            ))
            .into()
    }
}

impl ToSchema for DurationSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Duration")
    }
}

/// A finished delivery state, one a replay may name ([`super::replay_input::FINISHED`]).
pub struct FinishedStateSchema;

impl PartialSchema for FinishedStateSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A state a delivery ends in: `succeeded`, `failed` (given up) or `cancelled`.",
            ))
            .enum_values(Some(
                super::replay_input::FINISHED
                    .iter()
                    .map(|state| state.as_str()),
            ))
            .into()
    }
}

impl ToSchema for FinishedStateSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FinishedState")
    }
}

/// A bulk replay: the webhook's deliveries created in `[from, to)` (at most 31 days) and now in
/// one of `states`. `since` and `until` are accepted for `from` and `to`. Unknown fields are
/// refused.
#[derive(ToSchema)]
#[schema(as = ReplayRequest)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Described, not built: `ReplayInput` parses the body.
pub struct ReplayRequestBody {
    /// The range's start, inclusive (RFC 3339).
    #[schema(format = DateTime, example = "2026-12-01T00:00:00Z")]
    from: String,
    /// The range's end, exclusive (RFC 3339): after `from`, and at most 31 days after it.
    #[schema(format = DateTime, example = "2026-12-02T00:00:00Z")]
    to: String,
    /// The states of the deliveries to replay; every finished state (`succeeded`, `failed`,
    /// `cancelled`) when not given.
    #[serde(default)]
    #[schema(value_type = Vec<FinishedStateSchema>, min_items = 1)]
    states: Vec<String>,
    /// The same as the `Idempotency-Key` header (giving both with different values is refused).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[ -~]+$")]
    idempotency_key: String,
}
