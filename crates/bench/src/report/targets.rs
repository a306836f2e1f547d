//! The ratios and absolute figures the pipeline is held to, each with its goal and whether this
//! run met it.

use std::fmt::Write as _;

use super::{Kind, Report, int};

/// A measured value against one of the targets.
struct Check {
    what: &'static str,
    value: String,
    goal: &'static str,
    met: bool,
}

impl Check {
    /// `None` when the value was not measured in this run.
    fn new(
        what: &'static str,
        value: Option<f64>,
        decimals: usize,
        goal: &'static str,
        met: fn(f64) -> bool,
    ) -> Option<Self> {
        let v = value?;
        let shown = if decimals == 0 {
            int(v)
        } else {
            // One more decimal while the rounded figure would seem to meet the goal the value
            // misses, or the other way round (0.598 is not shown as 0.60 against "≥ 0.60").
            let mut decimals = decimals;
            while decimals < 4
                && format!("{v:.decimals$}")
                    .parse::<f64>()
                    .is_ok_and(|rounded| met(rounded) != met(v))
            {
                decimals += 1;
            }
            format!("{v:.decimals$}")
        };
        Some(Self {
            what,
            value: shown,
            goal,
            met: met(v),
        })
    }
}

impl Report {
    /// The targets this run measured, each with whether it was met.
    fn checks(&self) -> Vec<Check> {
        let rate = |kind| self.row(kind).map(|r| r.delivered_rate);
        let p99 = |kind| self.row(kind).and_then(|r| r.latency_ms).map(|l| l[2]);
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let peak = |i: usize| {
            self.rows
                .iter()
                .filter(|r| !r.kind.is_memory())
                .filter_map(|r| r.peak_rss_mib[i])
                .reduce(f64::max)
        };
        let checks = [
            Check::new(
                "fanout1 deliveries/s",
                rate(Kind::Fanout1),
                0,
                "≥ 5,000",
                |v| v >= 5_000.0,
            ),
            Check::new(
                "fanout1 ÷ broker-hop",
                self.ratio(Kind::Fanout1, "broker-hop"),
                2,
                "≥ 0.60",
                |v| v >= 0.60,
            ),
            Check::new(
                "fanout10 deliveries/s",
                rate(Kind::Fanout10),
                0,
                "≥ 15,000",
                |v| v >= 15_000.0,
            ),
            Check::new(
                "fanout10 ÷ http-ceiling",
                self.ratio(Kind::Fanout10, "http-ceiling"),
                2,
                "≥ 0.30",
                |v| v >= 0.30,
            ),
            Check::new(
                "steady p99 publish→receive, ms",
                p99(Kind::Steady),
                1,
                "≤ 20",
                |v| v <= 20.0,
            ),
            Check::new(
                "hanging: healthy deliveries/s, beside hanging ÷ beside healthy",
                ratio(rate(Kind::HangingTwo), rate(Kind::HangingNone)),
                2,
                "≥ 0.90",
                |v| v >= 0.90,
            ),
            Check::new(
                "hanging: healthy p99, beside hanging ÷ beside healthy",
                ratio(p99(Kind::HangingTwo), p99(Kind::HangingNone)),
                2,
                "≤ 1.11 (keeps 90%)",
                |v| v <= 1.0 / 0.9,
            ),
            Check::new(
                "dispatcher peak RSS (max over scenarios), MiB",
                peak(0),
                1,
                "≤ 64",
                |v| v <= 64.0,
            ),
            Check::new(
                "sender peak RSS (max over scenarios), MiB",
                peak(1),
                1,
                "≤ 64",
                |v| v <= 64.0,
            ),
        ];
        checks.into_iter().flatten().collect()
    }

    /// Each target this run measured and missed, as `what: value (target goal)`.
    pub fn missed_targets(&self) -> Vec<String> {
        self.checks()
            .into_iter()
            .filter(|c| !c.met)
            .map(|c| format!("{}: {} (target {})", c.what, c.value, c.goal))
            .chain(self.missed.iter().cloned())
            .collect()
    }

    /// What `--check` decides: an error naming every missed target and every scenario that
    /// failed to run, or `Ok` when there is none.
    pub fn verdict(&self) -> anyhow::Result<()> {
        let missed = self.missed_targets();
        let failed = self.failures();
        if missed.is_empty() && failed.is_empty() {
            return Ok(());
        }
        let mut problems = Vec::new();
        if !missed.is_empty() {
            problems.push(format!("missed targets: {}", missed.join("; ")));
        }
        if !failed.is_empty() {
            problems.push(format!("failed: {}", failed.join(", ")));
        }
        anyhow::bail!("{}", problems.join("; "))
    }

    pub(super) fn targets_table(&self, out: &mut String) {
        let checks = self.checks();
        if checks.is_empty() {
            return;
        }
        out.push_str(HEADER);
        for c in checks {
            target_row(out, c.what, &c.value, c.goal, c.met);
        }
        out.push('\n');
    }

    /// Appends to a scenario's `table` its targets, each `(measure, value, target, met)`, as a
    /// table of their own, and records those missed for `--check`.
    pub fn targets<const N: usize>(
        &mut self,
        table: &mut String,
        targets: [(String, String, String, bool); N],
    ) {
        table.push('\n');
        table.push_str(HEADER);
        for (what, value, goal, met) in targets {
            target_row(table, &what, &value, &goal, met);
            if !met {
                self.missed(format!("{what}: {value} (target {goal})"));
            }
        }
    }
}

/// The head of a table of targets.
const HEADER: &str = "| measure | value | target | met |\n|---|---:|---|---|\n";

fn target_row(out: &mut String, what: &str, value: &str, goal: &str, met: bool) {
    let met = if met { "yes" } else { "**no**" };
    let _ = writeln!(out, "| {what} | {value} | {goal} | {met} |");
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, Report, Row};
    use super::Check;

    fn report(fanout1_rate: f64) -> Report {
        let mut report = Report::new("webhooks-bench --check".into());
        report.add_row(Row {
            delivered_rate: fanout1_rate,
            ..Row::combined(Kind::Fanout1, &[])
        });
        report
    }

    #[test]
    fn check_fails_on_a_missed_target_and_passes_when_all_are_met() {
        use clap::Parser;
        let args = crate::args::Args::try_parse_from(["webhooks-bench", "--check"]).expect("args");
        assert!(args.check);
        let met = report(5_000.0);
        assert!(met.missed_targets().is_empty());
        assert!(met.verdict().is_ok());
        assert!(
            met.markdown()
                .contains("| fanout1 deliveries/s | 5,000 | ≥ 5,000 | yes |")
        );

        let missed = report(4_999.0);
        assert_eq!(
            missed.missed_targets(),
            vec!["fanout1 deliveries/s: 4,999 (target ≥ 5,000)".to_owned()]
        );
        let error = missed
            .verdict()
            .expect_err("a missed target fails the check");
        assert!(
            error
                .to_string()
                .contains("missed targets: fanout1 deliveries/s")
        );
        assert!(missed.markdown().contains("| **no** |"));
    }

    #[test]
    fn check_fails_when_a_scenario_failed_although_nothing_measured_was_missed() {
        let mut report = report(9_000.0);
        assert!(report.verdict().is_ok());
        report.failure("steady");
        let error = report
            .verdict()
            .expect_err("a failed scenario fails the check");
        assert_eq!(error.to_string(), "failed: steady");
        // A scenario's own table (memory) reports its misses the same way.
        let mut report = Report::new("webhooks-bench".into());
        report.missed("memory wide sender: 70.0 MiB (target 64 MiB)".into());
        let error = report
            .verdict()
            .expect_err("a missed memory target fails the check");
        assert!(error.to_string().contains("memory wide sender"), "{error}");
    }

    #[test]
    fn a_value_is_never_rounded_onto_the_other_side_of_its_goal() {
        let at_least = |v: f64| v >= 0.60;
        let shown = |v: f64| {
            let c = Check::new("ratio", Some(v), 2, "≥ 0.60", at_least).expect("measured");
            (c.value, c.met)
        };
        assert_eq!(shown(0.5976), ("0.598".to_owned(), false));
        assert_eq!(shown(0.6012), ("0.60".to_owned(), true));
        assert_eq!(shown(0.55), ("0.55".to_owned(), false));
    }
}
