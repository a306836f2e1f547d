//! A service's `/metrics` text, parsed: each sample by its full series name, summed over labels
//! or read for one label.

use std::collections::HashMap;

/// One scrape: every sample by its full series name (`name{labels}`).
#[derive(Clone, Debug, Default)]
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Parses the Prometheus text format (comments skipped).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse::<f64>().ok()?))
            })
            .collect();
        Self(samples)
    }

    /// The sum over every series of metric `name`; `None` when there is no such series.
    pub fn find(&self, name: &str) -> Option<f64> {
        let mut values = self
            .0
            .iter()
            .filter(|(series, _)| {
                series
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
            })
            .map(|(_, value)| value)
            .peekable();
        values.peek()?;
        Some(values.sum())
    }

    /// The sum over every series of metric `name` (0 when there is none).
    pub fn sum(&self, name: &str) -> f64 {
        self.find(name).unwrap_or(0.0)
    }

    /// The series of metric `name` with exactly the one label `label="value"`.
    pub fn labelled(&self, name: &str, label: &str, value: &str) -> f64 {
        let series = format!("{name}{{{label}=\"{value}\"}}");
        self.0.get(&series).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_sums_series() {
        let text = "# HELP x\nwebhooks_sender_attempts_total{outcome=\"success\"} 5\nwebhooks_sender_attempts_total{outcome=\"failure\"} 2\nwebhooks_sender_attempts_totally 9\n";
        let scrape = Scrape::parse(text);
        assert_eq!(scrape.sum("webhooks_sender_attempts_total"), 7.0);
        assert_eq!(scrape.find("webhooks_sender_attempts"), None);
        assert_eq!(
            scrape.labelled("webhooks_sender_attempts_total", "outcome", "failure"),
            2.0
        );
    }
}
