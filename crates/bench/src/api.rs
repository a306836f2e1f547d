//! The management API under concurrent clients: webhooks created back to back by 4, 16 and 64
//! clients at once against the dispatcher alone (its real database, the default pool of
//! `DATABASE_POOL_SIZE` connections unless the environment sets one), a few seconds each. Every
//! create must answer 201; throughput and latency per concurrency go into a table of their own.

use std::time::{Duration, Instant};

use webhooks_harness::api::Api;
use webhooks_harness::publisher::{EVENT_NAME, PROJECT};
use webhooks_harness::service::Service;
use webhooks_harness::services::Services;

use crate::ctx::Ctx;
use crate::report::Report;
use crate::report::api_table::ApiRow;

/// Concurrent clients of each measurement: below, at and above the default pool size (16).
pub const CONCURRENCY: [usize; 3] = [4, 16, 64];
/// How long each concurrency creates webhooks (a tenth with `--quick`).
const MEASURE_FOR: Duration = Duration::from_secs(4);
/// Creates before the first measurement, not counted: connections opened, statements planned.
const WARM_UP: usize = 200;
/// The URL every created webhook points at (never called: no event is published).
const TARGET: &str = "http://127.0.0.1:9/api-bench";

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    // A scene whose receiver nothing calls: the webhooks point nowhere and no event is published.
    let rows = ctx
        .scene(1, None, async |scene| measure(ctx, &mut scene.world).await)
        .await?;
    for row in rows {
        eprintln!("{}", row.markdown());
        report.add_api(row);
    }
    Ok(())
}

async fn measure(ctx: &Ctx, world: &mut Services) -> anyhow::Result<Vec<ApiRow>> {
    world.start(Service::Dispatcher).await?;
    let period = if ctx.args.quick {
        MEASURE_FOR / 10
    } else {
        MEASURE_FOR
    };
    let api = world.api()?;
    clients(&api, 4, Until::Count(WARM_UP), "warm-up").await;
    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        rows.push(clients(&api, concurrency, Until::Elapsed(period), "api").await);
    }
    Ok(rows)
}

/// When the clients stop starting new creates.
#[derive(Clone, Copy)]
enum Until {
    Count(usize),
    Elapsed(Duration),
}

/// `concurrency` clients creating webhooks back to back, each waiting for its answer before the
/// next.
async fn clients(api: &Api, concurrency: usize, until: Until, title: &str) -> ApiRow {
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let client = |_| async {
        let mut answers = Vec::new();
        loop {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let more = match until {
                Until::Count(count) => n < count,
                Until::Elapsed(period) => started.elapsed() < period,
            };
            if !more {
                return answers;
            }
            let sent = Instant::now();
            let title = format!("{title} {n}");
            let status = api
                .create_webhook_status(PROJECT, &title, TARGET, &[EVENT_NAME])
                .await
                .unwrap_or(0);
            let took = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
            answers.push((status, took));
        }
    };
    let answers: Vec<(u16, u32)> = futures::future::join_all((0..concurrency).map(client))
        .await
        .into_iter()
        .flatten()
        .collect();
    let wall_s = started.elapsed().as_secs_f64();
    let mut latencies_us: Vec<u32> = answers.iter().map(|(_, took)| *took).collect();
    latencies_us.sort_unstable();
    let mut failures = std::collections::BTreeMap::new();
    for (status, _) in answers.iter().filter(|(status, _)| *status != 201) {
        *failures.entry(*status).or_default() += 1;
    }
    ApiRow {
        concurrency,
        creates: answers.len(),
        failures: failures.into_iter().collect(),
        wall_s,
        latencies_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_rate_percentiles_and_failures_by_status() {
        let row = ApiRow {
            concurrency: 16,
            creates: 4_000,
            failures: vec![(500, 16)],
            wall_s: 2.0,
            latencies_us: (1..=100).map(|ms| ms * 1000).collect(),
        };
        assert_eq!(
            row.markdown(),
            "| 16 | 4,000 | **16** (16× 500) | 2,000 | 50.0 | 95.0 | 99.0 | 100.0 |"
        );
        let clean = ApiRow {
            failures: Vec::new(),
            ..row
        };
        assert!(clean.markdown().starts_with("| 16 | 4,000 | 0 | 2,000 |"));
    }
}
