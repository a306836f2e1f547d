//! The scenarios: fan-out 1 and 10 at full speed, a steady rate for latency, and hanging
//! endpoints beside healthy ones. Each runs in a world of its own (fresh database, broker names,
//! service processes and receiver) so that no scenario inherits another's tables, queues or memory.
//! The backlog scenario lives in [`crate::backlog`].

use webhooks_harness::publisher::PROJECT;

use crate::args::{STEADY_RATE, Scenario};
use crate::baselines::{self, Baseline};
use crate::ctx::{Ctx, Scene};
use crate::phase::{self, Measured, Spec};
use crate::report::{Kind, Pair, Report, Row, int};

/// `DELIVERY_TIMEOUT` of the hanging scenario, so hanging attempts end (and the run finishes) quickly.
pub const HANGING_TIMEOUT: &str = "2s";
/// Webhooks of the hanging scenario: measured healthy ones, and those beside them per phase.
const HEALTHY: usize = 8;
const HANGING: usize = 2;
/// Events per second of the hanging scenario's phases: 4,000 deliveries a second to the measured
/// webhooks (and 1,000 to the other 2), well below what the pipeline can do, so that latency is
/// the pipeline's rather than that of a queue of published events or of a saturated machine.
const HANGING_RATE: f64 = 500.0;
/// Pairs of phases (2 healthy beside, then 2 hanging beside) of the hanging scenario.
const ROUNDS: usize = 5;
/// Requests of the HTTP ceiling and messages of the broker hop, before `--quick`.
const CEILING_REQUESTS: u64 = 100_000;
const HOP_MESSAGES: u64 = 50_000;

/// Runs `scenario` and adds its rows to `report`. The full-speed fan-outs wait for a quiet
/// machine before each of their measurements, the others once before they start.
pub async fn run(ctx: &Ctx, scenario: Scenario, report: &mut Report) -> anyhow::Result<()> {
    let events = ctx.args.events(scenario);
    let hop_first = scenario == Scenario::Steady && !ctx.args.no_baselines;
    if !hop_first
        && !matches!(
            scenario,
            Scenario::Fanout1 | Scenario::Fanout10 | Scenario::Memory | Scenario::Soak
        )
    {
        report.settle(scenario.name().to_owned()).await;
    }
    match scenario {
        Scenario::Fanout1 => rounds(ctx, report, Kind::Fanout1, events).await,
        Scenario::Fanout10 => rounds(ctx, report, Kind::Fanout10, events).await,
        Scenario::Steady => {
            if hop_first {
                steady_hop(ctx, report, events).await;
            }
            let spec = Spec {
                rate: Some(STEADY_RATE),
                ..fanout_spec(Kind::Steady, Kind::Steady.label().to_owned(), events)
            };
            let measured = fanout(ctx, spec).await?;
            report.add(Kind::Steady, &measured);
            Ok(())
        }
        Scenario::Hanging => hanging(ctx, report, events).await,
        Scenario::Backlog => crate::backlog::run(ctx, report, events).await,
        Scenario::Api => crate::api::run(ctx, report).await,
        Scenario::Fair => crate::fair::run(ctx, report, events).await,
        Scenario::BrokerBacklog => crate::backlog::run_in_broker(ctx, report, events).await,
        Scenario::Memory => crate::memory::run(ctx, report).await,
        Scenario::Retention => crate::retention::run(ctx, report).await,
        Scenario::Listing => crate::listing::run(ctx, report).await,
        Scenario::Replay => crate::replay::run(ctx, report).await,
        Scenario::Soak => anyhow::bail!("the soak runs on its own, not as a measured scenario"),
    }
}

/// The baseline a full-speed scenario is read against: the broker's one-hop rate for fan-out 1
/// (one message per delivery at most), the plain-HTTP ceiling for fan-out 10 (ten requests per
/// message).
fn baseline_of(kind: Kind) -> &'static str {
    if kind == Kind::Fanout1 {
        "broker-hop"
    } else {
        "http-ceiling"
    }
}

async fn measure_baseline(ctx: &Ctx, kind: Kind) -> anyhow::Result<Baseline> {
    if kind == Kind::Fanout1 {
        let messages = ctx.args.scaled(HOP_MESSAGES);
        baselines::hop::broker_hop(ctx, messages, None).await
    } else {
        baselines::http::http_ceiling(ctx.args.scaled(CEILING_REQUESTS), 10).await
    }
}

/// The broker's own publish→consume latency at the steady rate, as many messages as the steady
/// scenario has events, measured right before it: what the broker alone adds to each event. Each
/// of the two waits for a quiet machine.
async fn steady_hop(ctx: &Ctx, report: &mut Report, events: u64) {
    report
        .settle(baselines::hop::BROKER_HOP_STEADY.to_owned())
        .await;
    match baselines::hop::broker_hop(ctx, events, Some(STEADY_RATE)).await {
        Ok(b) => report.baseline(b),
        Err(e) => report.failed(baselines::hop::BROKER_HOP_STEADY, &e),
    }
    report.settle(Kind::Steady.label().to_owned()).await;
}

/// `--rounds` rounds of a full-speed fan-out scenario, each in a world of its own and (unless
/// `--no-baselines`) right after a fresh measurement of its baseline, so that each round's ratio
/// compares two figures taken under the same conditions of the machine. One row for the rounds
/// together ([`Row::combined`]), one for the baseline's, and the ratio checked is the median
/// round's: one round hit by something else on the machine moves neither.
async fn rounds(ctx: &Ctx, report: &mut Report, kind: Kind, events: u64) -> anyhow::Result<()> {
    let total = ctx.args.rounds;
    let (mut measured, mut baselines, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=total {
        let baseline = if ctx.args.no_baselines {
            None
        } else {
            let name = baseline_of(kind);
            report.settle(format!("{name} ({round}/{total})")).await;
            match measure_baseline(ctx, kind).await {
                Ok(b) => Some(b),
                Err(e) => {
                    report.failed(name, &e);
                    None
                }
            }
        };
        let label = format!("{} ({round}/{total})", kind.label());
        report.settle(label.clone()).await;
        let m = fanout(ctx, fanout_spec(kind, label, events)).await?;
        if let Some(b) = baseline {
            pairs.push(Pair {
                kind,
                baseline: b.label,
                rate: m.delivered_rate(),
                baseline_rate: b.rate,
            });
            baselines.push(b);
        }
        measured.push(m);
    }
    if let Some(b) = Baseline::combined(&baselines) {
        report.baseline(b);
    }
    report.pairs(&pairs);
    report.add_row(Row::combined(kind, &measured));
    for m in &measured {
        report.add_stages(m);
    }
    Ok(())
}

/// A phase of `kind` at full speed, to its webhooks (all healthy).
fn fanout_spec(kind: Kind, label: String, events: u64) -> Spec {
    Spec {
        label,
        phase: 1,
        events,
        rate: None,
        healthy: if kind == Kind::Fanout10 { 10 } else { 1 },
    }
}

/// Runs `spec` with webhooks `first..first + HANGING` beside the measured ones, which never
/// answer if `hanging` and otherwise answer at once; they are deleted afterwards.
async fn beside_phase(
    ctx: &Ctx,
    scene: &Scene,
    first: usize,
    hanging: bool,
    spec: Spec,
) -> anyhow::Result<Measured> {
    let mut beside = Vec::new();
    for k in first..first + HANGING {
        let url = if hanging {
            scene.receiver.url(k, true)
        } else {
            scene.receiver.beside_url(k)
        };
        beside.push(
            scene
                .create_webhook(&format!("bench beside {k}"), &url)
                .await?,
        );
    }
    let measured = phase::run(scene, &ctx.connection, spec).await?;
    let api = scene.world.api()?;
    for id in &beside {
        api.delete_webhook(PROJECT, id).await?;
    }
    Ok(measured)
}

/// A phase's p99 publish→receive latency in milliseconds.
fn p99_ms(m: &Measured) -> f64 {
    crate::report::percentile_us(&m.arrivals.latencies_us, 0.99) / 1000.0
}

/// One phase of `spec` in a world of its own, with `spec.healthy` webhooks.
async fn fanout(ctx: &Ctx, spec: Spec) -> anyhow::Result<Measured> {
    ctx.scene(spec.healthy, None, async |scene| {
        scene.start_services().await?;
        scene.healthy_webhooks(0, spec.healthy).await?;
        phase::run(scene, &ctx.connection, spec).await
    })
    .await
}

/// 8 measured healthy webhooks beside 2 more healthy ones, then beside 2 hanging ones instead,
/// [`ROUNDS`] times over, at [`HANGING_RATE`]. Both phases of a round deliver the same events to
/// 10 webhooks, so they differ only in whether 2 of them answer: what the comparison shows is
/// the hanging endpoints' effect on the healthy ones, not the cost of 2 more webhooks. The 2 of
/// each phase are new webhooks on endpoints the sender has not seen, deleted when the phase ends.
async fn hanging(ctx: &Ctx, report: &mut Report, events: u64) -> anyhow::Result<()> {
    let ports = HEALTHY + 2 * HANGING * ROUNDS;
    let phases = ctx.scene(ports, Some(HANGING_TIMEOUT), async |scene| {
        scene.start_services().await?;
        scene.healthy_webhooks(0, HEALTHY).await?;
        let (mut healthy, mut hanging) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            for (kind, measured) in [
                (Kind::HangingNone, &mut healthy),
                (Kind::HangingTwo, &mut hanging),
            ] {
                // Phases are numbered 1, 2, … in running order, each with 2 webhooks of its own.
                let index = 2 * round + usize::from(kind == Kind::HangingTwo);
                let spec = Spec {
                    label: format!("{} ({}/{ROUNDS})", kind.label(), round + 1),
                    phase: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    events,
                    rate: Some(HANGING_RATE),
                    healthy: HEALTHY,
                };
                let first = HEALTHY + HANGING * index;
                let hang = kind == Kind::HangingTwo;
                measured.push(beside_phase(ctx, scene, first, hang, spec).await?);
            }
        }
        Ok((healthy, hanging))
    });
    let (healthy, hanging) = phases.await?;
    let sum = |phases: &[Measured], f: fn(&Measured) -> f64| phases.iter().map(f).sum::<f64>();
    report.note(format!(
        "hanging: {ROUNDS} rounds of {} events at {} events/s to 8 measured webhooks and 2 more, which answered at once \
         ({} deliveries reached them) and then never answered; the sender ran with DELIVERY_TIMEOUT={HANGING_TIMEOUT} \
         (instead of 15s) so hanging attempts end quickly; {} requests reached the hanging endpoints, \
         {} attempts failed and {} deliveries were held back (deferred) by the sender's endpoint limits; \
         p99 of each round, beside healthy / beside hanging: {} ms (the rows give the median).",
        int(events as f64),
        int(HANGING_RATE),
        int(sum(&healthy, |m| m.arrivals.beside_arrivals as f64)),
        int(sum(&hanging, |m| m.arrivals.hang_arrivals as f64)),
        int(sum(&hanging, |m| m.stages.failed_attempts)),
        int(sum(&hanging, |m| m.stages.deferred)),
        healthy
            .iter()
            .zip(&hanging)
            .map(|(a, b)| format!("{:.1} / {:.1}", p99_ms(a), p99_ms(b)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    report.add_row(Row::combined(Kind::HangingNone, &healthy));
    report.add_row(Row::combined(Kind::HangingTwo, &hanging));
    for m in healthy.iter().zip(&hanging).flat_map(|(a, b)| [a, b]) {
        report.add_stages(m);
    }
    Ok(())
}
