//! Counters split by one label whose values are a closed set, named by an enum: a call site
//! passes a variant, so a misspelt value cannot start a new series, and every series is created
//! at 0 from the start (a `rate()` over a series never counted is no rate).

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, Opts};
use std::marker::PhantomData;

/// The values of one label, in the order they are exported.
pub trait LabelValue: Copy + 'static {
    /// Every value.
    const ALL: &'static [Self];
    /// The value as exported.
    fn as_str(self) -> &'static str;
}

/// An `IntCounterVec` with one label, whose values are `L`'s.
#[derive(Clone)]
pub struct CounterBy<L> {
    counters: IntCounterVec,
    values: PhantomData<L>,
}

impl<L: LabelValue> CounterBy<L> {
    /// The counter `opts` split by `label`, with every value's series created at 0.
    pub fn new(opts: Opts, label: &str) -> prometheus::Result<Self> {
        let counters = IntCounterVec::new(opts, &[label])?;
        for value in L::ALL {
            counters.with_label_values(&[value.as_str()]);
        }
        Ok(Self {
            counters,
            values: PhantomData,
        })
    }

    /// The series of `value`.
    pub fn with(&self, value: L) -> IntCounter {
        self.counters.with_label_values(&[value.as_str()])
    }

    /// For registering.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(self.counters.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    enum Colour {
        Red,
        Blue,
    }

    impl LabelValue for Colour {
        const ALL: &'static [Self] = &[Self::Red, Self::Blue];
        fn as_str(self) -> &'static str {
            match self {
                Self::Red => "red",
                Self::Blue => "blue",
            }
        }
    }

    #[test]
    fn every_value_is_exported_from_the_start_and_counts_apart() {
        let registry = prometheus::Registry::new();
        let counter: CounterBy<Colour> =
            CounterBy::new(Opts::new("paints_total", "Paints."), "colour").expect("metric");
        registry.register(counter.collector()).expect("register");
        counter.with(Colour::Blue).inc_by(2);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("text");
        assert!(text.contains("paints_total{colour=\"red\"} 0"), "{text}");
        assert!(text.contains("paints_total{colour=\"blue\"} 2"), "{text}");
    }
}
