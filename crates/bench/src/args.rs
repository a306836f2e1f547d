//! Command line of the benchmark: which scenarios, how many events, and where the broker and the
//! database are. Every default is local (127.0.0.1); counts shrink tenfold with `--quick`. The
//! soak, which only runs when asked for, has its own length, rate and seed.

use clap::{Parser, ValueEnum};

/// Runs the real dispatcher and sender against the real RabbitMQ and PostgreSQL, delivers to a
/// receiver of its own and prints a markdown table of rates, latencies, CPU and memory.
#[derive(Parser, Clone, Debug)]
#[command(name = "webhooks-bench", version)]
pub struct Args {
    /// Scenario to run; repeat for several. Default: all of them except `soak`, in the order listed
    /// here. `soak` runs alone.
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<Scenario>,

    /// Events per scenario (per phase for `hanging` and `fair`) instead of each scenario's default.
    #[arg(long)]
    pub events: Option<u64>,

    /// Smoke run: every count divided by 10.
    #[arg(long)]
    pub quick: bool,

    /// Exit non-zero when any target measured was missed (or a scenario failed to run), after
    /// printing the report as always; without it the run exits 0 and the table says `met: no`.
    #[arg(long)]
    pub check: bool,

    /// Skip the baselines (http-ceiling, broker-hop, and broker-hop at the steady rate); the ratios
    /// are then left out.
    #[arg(long)]
    pub no_baselines: bool,

    /// Rounds of each full-speed fan-out scenario. Each round runs right after its own
    /// measurement of the baseline it is compared with (broker-hop for fanout1, http-ceiling for
    /// fanout10), and the ratio checked is the median of the rounds' ratios.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,

    /// Soak: minutes of publishing while faults are injected.
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,

    /// Soak: events published per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,

    /// Soak: seed of the fault schedule, to replay the same faults at the same times (default:
    /// taken from the clock and printed).
    #[arg(long)]
    pub seed: Option<u64>,

    /// RabbitMQ the services and the benchmark use.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,

    /// PostgreSQL server (no database name): each scenario creates and drops its own database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// 50,000 events to 1 webhook.
    Fanout1,
    /// 10,000 events to 10 webhooks (100,000 deliveries).
    Fanout10,
    /// 1,000 events/s for 20 s to 1 webhook, for latency.
    Steady,
    /// 8 healthy webhooks beside 2 more healthy ones, then beside 2 that never answer; five rounds.
    Hanging,
    /// 200,000 events published while no sender runs, then drained.
    Backlog,
    /// Webhooks created through the API by 4, 16 and 64 concurrent clients, 4 s each, against
    /// the dispatcher alone: creates/s and latency per concurrency.
    Api,
    /// 10 projects' healthy webhooks at 1,000 events/s, alone and then beside a project of 50
    /// webhooks on one host answering in 5 s; three rounds.
    Fair,
    /// Not in the default run (it takes minutes): 1,000,000 events wait in the broker while
    /// neither service runs, then both start and work through them; memory must stay flat.
    BrokerBacklog,
    /// Not in the default run: 2,000 events of 1 MiB, then 2,000 of 1 KiB, wait in the broker
    /// while neither service runs, then both start; then a burst of 200 events to 1,000 webhooks.
    /// Peak memory is checked against the documented bound and 128 MiB (64 MiB in the burst).
    Memory,
    /// Not in the default run (about three minutes): 400 events/s while the services' clock moves
    /// through five windows of RETENTION=2d; sizes, throughput, p99 and the cost of each drop.
    Retention,
    /// Not in the default run (about two minutes, most of it inserting rows): the API's delivery
    /// lists timed at 40,000 deliveries and at 3,000,000.
    Listing,
    /// Not in the default run (a few minutes): 1,000 events/s to 1 webhook alone, then while
    /// 100,000 failed deliveries of another webhook are replayed through the API; the p99 beside
    /// the replay against the p99 alone, and the replay's time and rate.
    Replay,
    /// Not in the default run: `--minutes` of events at `--rate` to 4 webhooks while a random
    /// fault is injected every 20-60 s; every delivery must arrive.
    Soak,
}

impl Scenario {
    /// The default run (everything but the soak).
    pub const ALL: [Scenario; 7] = [
        Scenario::Fanout1,
        Scenario::Fanout10,
        Scenario::Steady,
        Scenario::Hanging,
        Scenario::Backlog,
        Scenario::Api,
        Scenario::Fair,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout1 => "fanout1",
            Scenario::Fanout10 => "fanout10",
            Scenario::Steady => "steady",
            Scenario::Hanging => "hanging",
            Scenario::Backlog => "backlog",
            Scenario::Api => "api",
            Scenario::Fair => "fair",
            Scenario::BrokerBacklog => "broker-backlog",
            Scenario::Memory => "memory",
            Scenario::Retention => "retention",
            Scenario::Listing => "listing",
            Scenario::Replay => "replay",
            Scenario::Soak => "soak",
        }
    }

    fn default_events(self) -> u64 {
        match self {
            Scenario::Fanout1 => 50_000,
            Scenario::Fanout10 => 10_000,
            Scenario::Steady => STEADY_RATE as u64 * 20,
            Scenario::Hanging => 2_000,
            Scenario::Backlog => 200_000,
            // Sized by time instead (see the api scenario).
            Scenario::Api => 0,
            // The healthy projects' events per phase.
            Scenario::Fair => 10_000,
            Scenario::BrokerBacklog => 1_000_000,
            // Sized by its phases (see the memory scenario).
            Scenario::Memory => 0,
            // Sized by time (see the retention scenario).
            Scenario::Retention => 0,
            // Sized by its tables (see the listing scenario).
            Scenario::Listing => 0,
            // Sized by its replay and its time alone (see the replay scenario).
            Scenario::Replay => 0,
            // Sized by `--minutes` and `--rate` instead (see `Args::events`).
            Scenario::Soak => 0,
        }
    }
}

/// Events per second of the `steady` scenario.
pub const STEADY_RATE: f64 = 1_000.0;

impl Args {
    /// Whether the soak was asked for (it then runs alone).
    pub fn soak(&self) -> bool {
        self.scenarios.contains(&Scenario::Soak)
    }

    /// The scenarios of a measuring run, in a fixed order (never the soak).
    pub fn selected(&self) -> Vec<Scenario> {
        if self.scenarios.is_empty() {
            return Scenario::ALL.to_vec();
        }
        Scenario::ALL
            .into_iter()
            .chain([
                Scenario::BrokerBacklog,
                Scenario::Memory,
                Scenario::Retention,
                Scenario::Listing,
                Scenario::Replay,
            ])
            .filter(|s| self.scenarios.contains(s))
            .collect()
    }

    /// Events for `scenario`: `--events`, else its default, divided by 10 with `--quick`; for the
    /// soak, `--rate` times `--minutes`.
    pub fn events(&self, scenario: Scenario) -> u64 {
        if scenario == Scenario::Soak {
            return (self.rate * self.minutes as f64 * 60.0).round() as u64;
        }
        self.scaled(self.events.unwrap_or(scenario.default_events()))
    }

    /// A count divided by 10 with `--quick` (never below 1).
    pub fn scaled(&self, count: u64) -> u64 {
        if self.quick {
            (count / 10).max(1)
        } else {
            count
        }
    }
}
