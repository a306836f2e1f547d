//! `--stall-probe`: what the machine's broker, database and scheduler were doing when a phase
//! stalled. Beside the phase, every 10 ms each: a persistent message published with a confirm into
//! a durable queue of its own and taken back (what the broker's disk writes cost an event), the
//! same with a transient message on a second queue (whether the broker kept serving meanwhile), a
//! synchronous commit of one row into a table of its own in the scenario's database (what the
//! database's disk writes cost a commit), and a 2 ms sleep (how late a timer fires: CPU and
//! scheduling). None of them touches the services, so a slow sample seen by the broker and the
//! database at once while the timer stays on time points at the disk they share.

use anyhow::Context;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions,
};
use lapin::{BasicProperties, Connection};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::janitor::{Names, probe_queues as queues};

/// Time between two samples of one probe.
const EVERY: Duration = Duration::from_millis(10);
/// The sleep whose lateness is measured.
const NAP: Duration = Duration::from_millis(2);
/// Samples slower than this are listed one by one.
pub const SLOW: Duration = Duration::from_millis(20);

/// One probe's samples.
#[derive(Debug, Default)]
pub struct Samples {
    pub what: &'static str,
    pub count: usize,
    pub max: Duration,
    /// Samples over [`SLOW`]: when each began (since the probe started) and how long it took.
    pub slow: Vec<(Duration, Duration)>,
}

impl Samples {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            ..Self::default()
        }
    }

    fn add(&mut self, began: Duration, took: Duration) {
        self.count += 1;
        self.max = self.max.max(took);
        if took > SLOW {
            self.slow.push((began, took));
        }
    }
}

/// The probes, running until [`Probe::finish`].
pub struct Probe {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<Samples>>>,
}

impl Probe {
    /// Starts the probes: the broker's on `connection` with the world's [`queues`], the
    /// database's on `database_url` with table `stall_probe`.
    pub async fn start(
        connection: &Connection,
        names: &Names,
        database_url: &str,
    ) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let started = Instant::now();
        let [persistent, transient] = queues(names);
        let mut tasks = Vec::new();
        for (queue, mode) in [(persistent, Mode::Persistent), (transient, Mode::Transient)] {
            tasks.push(broker(connection, queue, mode, started, stop.clone()).await?);
        }
        tasks.push(database(database_url, started, stop.clone()).await?);
        tasks.push(tokio::spawn(timer(started, stop.clone())));
        Ok(Self { stop, tasks })
    }

    /// Stops the probes and returns their samples.
    pub async fn finish(self) -> anyhow::Result<Vec<Samples>> {
        self.stop.cancel();
        let mut all = Vec::new();
        for task in self.tasks {
            all.push(task.await??);
        }
        Ok(all)
    }
}

/// Runs `sample` every [`EVERY`] until `stop`; each sample returns what it measured.
async fn every<F, Fut>(
    what: &'static str,
    started: Instant,
    stop: CancellationToken,
    mut sample: F,
) -> anyhow::Result<Samples>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let mut samples = Samples::new(what);
    while !stop.is_cancelled() {
        let began = Instant::now();
        let took = sample().await?;
        samples.add(began - started, took);
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
    Ok(samples)
}

/// How long `work` took.
async fn timed(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Duration> {
    let began = Instant::now();
    work.await?;
    Ok(began.elapsed())
}

/// How the broker probe publishes. A transient message is confirmed without a disk write: if its
/// round trip stalls with the persistent one's, the broker stopped serving its queues, not only
/// confirming.
#[derive(Clone, Copy)]
enum Mode {
    Persistent,
    Transient,
}

impl Mode {
    fn properties(self) -> BasicProperties {
        let delivery_mode = match self {
            Self::Persistent => 2,
            Self::Transient => 1,
        };
        BasicProperties::default().with_delivery_mode(delivery_mode)
    }

    fn what(self) -> &'static str {
        match self {
            Self::Persistent => "broker: persistent publish, confirm, get",
            Self::Transient => "broker, transient: publish, confirm, get on another queue",
        }
    }
}

async fn broker(
    connection: &Connection,
    queue: String,
    mode: Mode,
    started: Instant,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<Samples>>> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    crate::publisher::declare_durable(&channel, &queue, Default::default()).await?;
    channel
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await?;
    let properties = mode.properties();
    Ok(tokio::spawn(async move {
        let round_trip = || {
            timed(async {
                channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        b"stall probe",
                        properties.clone(),
                    )
                    .await?
                    .await?;
                while channel
                    .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                    .await?
                    .is_none()
                {}
                Ok(())
            })
        };
        let samples = every(mode.what(), started, stop, round_trip).await;
        let _ = channel.close(200, "done".into()).await;
        samples
    }))
}

async fn database(
    database_url: &str,
    started: Instant,
    stop: CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<Samples>>> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting the stall probe to the database")?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS stall_probe (at timestamptz NOT NULL);
             SET synchronous_commit = on",
        )
        .await?;
    let insert = client
        .prepare("INSERT INTO stall_probe VALUES (now())")
        .await?;
    Ok(tokio::spawn(async move {
        let commit = || {
            timed(async {
                client.execute(&insert, &[]).await?;
                Ok(())
            })
        };
        let samples = every("database: synchronous commit", started, stop, commit).await;
        drop(client);
        let _ = driver.await;
        samples
    }))
}

async fn timer(started: Instant, stop: CancellationToken) -> anyhow::Result<Samples> {
    every("timer: a 2 ms sleep's lateness", started, stop, || async {
        let slept = timed(async {
            tokio::time::sleep(NAP).await;
            Ok(())
        })
        .await?;
        Ok(slept.saturating_sub(NAP))
    })
    .await
}

/// One line for the notes: each probe's samples and maximum, then every slow sample of any probe in
/// time order, named by probe.
pub fn describe(label: &str, all: &[Samples]) -> String {
    let summary: Vec<String> = all
        .iter()
        .map(|s| format!("{} {} samples, max {:.1} ms", s.what, s.count, ms(s.max)))
        .collect();
    let mut slow: Vec<(Duration, Duration, &str)> = all
        .iter()
        .flat_map(|s| s.slow.iter().map(|(at, took)| (*at, *took, s.what)))
        .collect();
    slow.sort();
    let slow = if slow.is_empty() {
        format!("none over {} ms", SLOW.as_millis())
    } else {
        slow.iter()
            .map(|(at, took, what)| {
                let probe = what.split(':').next().unwrap_or(what);
                format!("{probe} {:.1} ms at {:.2} s", ms(*took), at.as_secs_f64())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "stall probe beside {label} (every 10 ms each): {}; slow samples: {slow}.",
        summary.join("; ")
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_samples_of_all_probes_are_listed_in_time_order() {
        let mut broker = Samples::new("broker: round trip");
        broker.add(Duration::from_millis(500), Duration::from_millis(2));
        broker.add(Duration::from_millis(2_000), Duration::from_millis(165));
        let mut database = Samples::new("database: commit");
        database.add(Duration::from_millis(1_990), Duration::from_millis(171));
        let timer = Samples::new("timer: lateness");
        let line = describe("steady", &[broker, database, timer]);
        assert!(
            line.contains("slow samples: database 171.0 ms at 1.99 s, broker 165.0 ms at 2.00 s."),
            "{line}"
        );
        assert!(
            line.contains("broker: round trip 2 samples, max 165.0 ms"),
            "{line}"
        );
        let quiet = describe("steady", &[Samples::new("timer: lateness")]);
        assert!(quiet.contains("slow samples: none over 20 ms."), "{quiet}");
    }
}
