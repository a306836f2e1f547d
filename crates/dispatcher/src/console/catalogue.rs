//! `/console/events.json`: the event catalogue ([`EventName::ALL`]) grouped by family, in
//! catalogue order, for the console's event picker. The API has no catalogue of its own yet; when
//! it has one, the console reads that instead and this file goes.

use axum::Json;
use axum::response::IntoResponse;
use serde::Serialize;
use webhooks_core::event::EventName;

/// One family of events: `run` with `run.started`, `run.completed`, ….
#[derive(Serialize, Debug, PartialEq)]
pub struct Group {
    pub name: &'static str,
    pub events: Vec<&'static str>,
}

/// Every event, grouped by family, families in the order of their first event.
pub fn groups() -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for event in EventName::ALL {
        match groups.iter_mut().find(|g| g.name == event.family()) {
            Some(group) => group.events.push(event.as_str()),
            None => groups.push(Group {
                name: event.family(),
                events: vec![event.as_str()],
            }),
        }
    }
    groups
}

pub async fn json() -> impl IntoResponse {
    Json(serde_json::json!({ "groups": groups() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_in_exactly_one_group_of_its_family() {
        let groups = groups();
        let all: Vec<&str> = groups.iter().flat_map(|g| g.events.clone()).collect();
        assert_eq!(all.len(), EventName::ALL.len());
        for group in &groups {
            assert!(
                group
                    .events
                    .iter()
                    .all(|e| e.starts_with(&format!("{}.", group.name)))
            );
        }
        assert_eq!(groups[0].name, "case");
        assert!(groups.iter().any(|g| g.name == "shared_step"));
    }
}
