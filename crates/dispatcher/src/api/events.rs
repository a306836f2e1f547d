//! The event catalogue (`GET /api/v1/events`): every name a webhook can subscribe to, titled and
//! grouped, from [`webhooks_core::event::CATALOGUE`].

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use webhooks_core::event::CATALOGUE;

use super::schemas::EventNameSchema;

/// A group of related events, e.g. those of test cases.
#[derive(Serialize, ToSchema)]
#[schema(as = EventGroup)]
pub struct GroupView {
    #[schema(example = "Test runs")]
    title: &'static str,
    /// In catalogue order.
    events: Vec<EventView>,
}

/// An event a webhook can subscribe to.
#[derive(Serialize, ToSchema)]
#[schema(as = CatalogueEvent)]
pub struct EventView {
    #[schema(value_type = EventNameSchema)]
    name: &'static str,
    /// What it means, as people read it.
    #[schema(example = "Test run start")]
    title: &'static str,
}

/// The event catalogue: every event name a webhook can subscribe to, titled, in groups.
#[utoipa::path(get, operation_id = "listEvents", path = "/events", tag = "events",
    responses((status = 200, description = "Every event of the catalogue, once, in groups", body = Vec<GroupView>)))]
pub async fn list() -> Json<Vec<GroupView>> {
    Json(
        CATALOGUE
            .iter()
            .map(|group| GroupView {
                title: group.title,
                events: group
                    .events
                    .iter()
                    .map(|(name, title)| EventView {
                        name: name.as_str(),
                        title,
                    })
                    .collect(),
            })
            .collect(),
    )
}
