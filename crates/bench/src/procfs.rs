//! What the kernel knows about a process and the machine, read from `/proc`: CPU time of a
//! process (`/proc/<pid>/stat`), its memory (`/proc/<pid>/status`), the machine's busy time
//! (`/proc/stat`), and a sampler that records the resident set of the services every 250 ms.

use anyhow::Context;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clock ticks per second of the `/proc` CPU counters (`getconf CLK_TCK`). It is 100 on every
/// mainstream Linux build, and asking sysconf would need `unsafe` libc calls, which the workspace
/// forbids.
const CLK_TCK: f64 = 100.0;

/// How often the sampler reads each process's resident set.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// User plus system CPU seconds `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected {path}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `fields[0]` is field 3.
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let text = fields.get(index).with_context(|| format!("short {path}"))?;
        text.parse::<f64>()
            .with_context(|| format!("field {} of {path}", index + 3))
    };
    Ok((ticks(11)? + ticks(12)?) / CLK_TCK)
}

/// CPU seconds used so far by every process whose command name is `command` (e.g. `postgres`,
/// `beam.smp`), whoever started them. Processes that exited meanwhile are not counted.
pub fn cpu_seconds_of_command(command: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == command)
        })
        .filter_map(|pid| cpu_seconds(pid).ok())
        .sum()
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the highest resident set since the process started.
    pub hwm_kib: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    })
}

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineTicks {
    busy: u64,
    total: u64,
}

impl MachineTicks {
    pub fn now() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let line = stat.lines().next().context("empty /proc/stat")?;
        let values: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...; idle and iowait are not busy.
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        Ok(Self {
            busy: total.saturating_sub(idle),
            total,
        })
    }

    /// Share of the machine's CPU time that was busy between `self` and `later`, 0..=1.
    pub fn busy_share(&self, later: &Self) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.busy.saturating_sub(self.busy) as f64 / total as f64
    }
}

/// The machine counts as quiet below this busy share over [`QUIET_WINDOW`].
const QUIET: f64 = 0.25;
const QUIET_WINDOW: Duration = Duration::from_millis(500);
/// Longest wait for quiet; past it the run goes on and the note says so.
const QUIET_WAIT_MOST: Duration = Duration::from_secs(20);

/// How a wait for a quiet machine went.
#[derive(Clone, Copy, Debug)]
pub struct Settled {
    pub waited: Duration,
    /// Busy share of the last window looked at.
    pub busy: f64,
}

impl Settled {
    pub fn quiet(&self) -> bool {
        self.busy < QUIET
    }
}

/// Waits until the machine is quiet, so that what one measurement left running (a database
/// dropping its files, the broker tidying a deleted queue, a checkpoint) is not charged to the
/// next one.
pub async fn settle() -> anyhow::Result<Settled> {
    let started = Instant::now();
    loop {
        let before = MachineTicks::now()?;
        tokio::time::sleep(QUIET_WINDOW).await;
        let busy = before.busy_share(&MachineTicks::now()?);
        let settled = Settled {
            waited: started.elapsed(),
            busy,
        };
        if settled.quiet() || settled.waited >= QUIET_WAIT_MOST {
            return Ok(settled);
        }
    }
}

/// Resident-set samples of one process.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    pub peak_kib: u64,
    /// (seconds since the sampler started, VmRSS KiB).
    pub series: Vec<(f64, u64)>,
}

/// Samples the resident set of every watched process every [`SAMPLE_EVERY`] until dropped.
pub struct RssSampler {
    watched: Arc<Mutex<HashMap<&'static str, (u32, Samples)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start() -> Self {
        let watched: Arc<Mutex<HashMap<&'static str, (u32, Samples)>>> = Arc::default();
        let shared = watched.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let at = started.elapsed().as_secs_f64();
                let mut watched = shared.lock().expect("sampler lock");
                for (pid, samples) in watched.values_mut() {
                    // A process that has exited (a zombie until reaped) reads as 0: not a sample.
                    if let Ok(memory) = memory(*pid)
                        && memory.rss_kib > 0
                    {
                        samples.peak_kib = samples.peak_kib.max(memory.rss_kib);
                        samples.series.push((at, memory.rss_kib));
                    }
                }
            }
        });
        Self { watched, task }
    }

    /// Starts sampling `pid` under `name`, forgetting what was sampled under that name before.
    pub fn watch(&self, name: &'static str, pid: u32) {
        let mut watched = self.watched.lock().expect("sampler lock");
        watched.insert(name, (pid, Samples::default()));
    }

    /// Clears the samples of every watched process (a new phase starts).
    pub fn reset(&self) {
        let mut watched = self.watched.lock().expect("sampler lock");
        for (_, samples) in watched.values_mut() {
            *samples = Samples::default();
        }
    }

    pub fn samples(&self, name: &str) -> Samples {
        let watched = self.watched.lock().expect("sampler lock");
        watched
            .get(name)
            .map(|(_, samples)| samples.clone())
            .unwrap_or_default()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).expect("cpu") >= 0.0);
        assert_eq!(cpu_seconds_of_command("no-such-command"), 0.0);
        let memory = memory(pid).expect("memory");
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
        let before = MachineTicks::now().expect("stat");
        let share = before.busy_share(&MachineTicks::now().expect("stat"));
        assert!((0.0..=1.0).contains(&share));
    }
}
