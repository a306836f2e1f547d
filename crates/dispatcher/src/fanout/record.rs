//! The record of a part of a batch: its matched events and their deliveries written in one
//! statement ([`crate::store::record`]), and what that leaves to hand off.
//!
//! A replayed event id records nothing new. Its deliveries were recorded with it the first time,
//! and those still waiting for their first attempt are handed off again, as ids to claim: the
//! earlier hand-off may have been lost with the batch's ack.

use anyhow::Context;
use chrono::SubsecRound;
use deadpool_postgres::Pool;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::clock::Clock;

use super::handoff::{Fresh, Handoff, Handoffs, carriable};
use super::matching::Matched;
use crate::store::record::{self as store, NewEvent, Recorded};

/// Records `matched` (event ids unique), each delivery leased to its hand-off for
/// `handoff_grace`; returns what to hand off: the new deliveries, plus the still-untouched
/// deliveries of redelivered events.
pub async fn record(
    pool: &Pool,
    clock: &Clock,
    handoff_grace: Duration,
    matched: &[Matched],
) -> anyhow::Result<Handoffs> {
    if matched.is_empty() {
        return Ok(Handoffs::default());
    }
    // To the microsecond, as stored: the hand-off names the lease it was recorded with.
    let now = clock.now().trunc_subsecs(6);
    let grace = chrono::Duration::from_std(handoff_grace).unwrap_or(chrono::Duration::seconds(30));
    let events: Vec<NewEvent<'_>> = matched
        .iter()
        .map(|m| NewEvent {
            id: &m.event.id,
            name: m.event.name,
            project: &m.event.project_code,
            body: &m.body,
            webhooks: &m.webhooks,
        })
        .collect();
    let client = pool.get().await.context("database pool")?;
    let inserted = store::record(&client, &events, now, now + grace)
        .await
        .context("recording events and deliveries")?;
    let fresh = by_event(matched, inserted)?;
    let mut waiting = Vec::new();
    let redelivered: Vec<&str> = matched
        .iter()
        .filter(|m| m.redelivered)
        .map(|m| m.event.id.as_str())
        .collect();
    if !redelivered.is_empty() {
        let fresh_ids: HashSet<Uuid> = fresh
            .iter()
            .flat_map(|f| f.deliveries.iter().copied())
            .collect();
        let found = store::waiting_of_events(&client, &redelivered, now)
            .await
            .context("finding deliveries of redelivered events")?;
        waiting.extend(
            found
                .into_iter()
                .filter(|w| !fresh_ids.contains(&w.delivery))
                .map(|w| Handoff {
                    delivery: w.delivery,
                    webhook: w.webhook,
                }),
        );
    }
    Ok(Handoffs {
        recorded: Some((now, now + grace)),
        fresh,
        waiting,
    })
}

/// The recorded deliveries grouped by event, events in the order their first delivery came
/// back, each with its body when small enough to carry.
fn by_event(matched: &[Matched], inserted: Vec<Recorded>) -> anyhow::Result<Vec<Fresh>> {
    let mut fresh: Vec<Fresh> = Vec::new();
    let mut at_of: HashMap<String, usize> = HashMap::new();
    let mut events: HashMap<&str, &Matched> =
        matched.iter().map(|m| (m.event.id.as_str(), m)).collect();
    for row in inserted {
        let at = match at_of.get(&row.event) {
            Some(at) => *at,
            None => {
                let Some(m) = events.remove(row.event.as_str()) else {
                    anyhow::bail!("the record returned a delivery of an event not in the batch");
                };
                fresh.push(Fresh {
                    name: m.event.name,
                    body: carriable(&m.body),
                    deliveries: Vec::new(),
                    webhooks: Vec::new(),
                });
                at_of.insert(row.event, fresh.len() - 1);
                fresh.len() - 1
            }
        };
        fresh[at].deliveries.push(row.delivery);
        fresh[at].webhooks.push(row.webhook);
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::handoff::CARRIED_BODY_MOST;
    use webhooks_core::event::Event;

    fn matched(id: &str, body: &str) -> Matched {
        let raw = format!(
            r#"{{"id":"{id}","event_name":"run.started","timestamp":1,"project_code":"DEMO","payload":{{}}}}"#
        );
        let event = Event::parse(raw.as_bytes(), None, 1 << 20).expect("an event");
        Matched {
            body: serde_json::value::RawValue::from_string(body.to_owned()).expect("raw"),
            event,
            webhooks: Vec::new(),
            redelivered: false,
        }
    }

    fn row(event: &str, delivery: u128) -> Recorded {
        Recorded {
            delivery: Uuid::from_u128(delivery),
            webhook: Uuid::from_u128(delivery + 100),
            event: event.into(),
        }
    }

    #[test]
    fn groups_deliveries_by_event_in_the_order_they_came_back() {
        let (a, b) = (
            Uuid::from_u128(1).to_string(),
            Uuid::from_u128(2).to_string(),
        );
        let large = format!("\"{}\"", "x".repeat(CARRIED_BODY_MOST));
        let batch = [matched(&a, &large), matched(&b, "{}")];
        let rows = vec![row(&b, 1), row(&a, 2), row(&b, 3)];
        let fresh = by_event(&batch, rows).expect("grouped");
        assert_eq!(fresh.len(), 2);
        assert_eq!(
            fresh[0].deliveries,
            [Uuid::from_u128(1), Uuid::from_u128(3)]
        );
        assert_eq!(
            fresh[0].webhooks,
            [Uuid::from_u128(101), Uuid::from_u128(103)]
        );
        assert_eq!(fresh[0].body.as_deref().map(|b| b.get()), Some("{}"));
        assert_eq!(fresh[1].deliveries, [Uuid::from_u128(2)]);
        // Too large to carry: the senders read it with their claim.
        assert!(fresh[1].body.is_none());
        let stranger = by_event(&batch, vec![row("elsewhere", 9)]);
        assert!(stranger.is_err());
    }
}
