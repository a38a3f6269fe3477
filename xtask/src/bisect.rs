//! `perf bisect`'s decisions, pure: which commits a bisection must look at, when a value
//! crosses the metric's threshold, and what to select to measure only that metric. The
//! command (`commands::bisect`) reads stored records, measures what it must, and prints.

use crate::compare::relative_change_pct;
use crate::config::Thresholds;
use crate::record::Suite;
use crate::render::bench_of;

/// Whether `value` crossed the threshold against the good end's `good` value: it moved by
/// more than `threshold_pct` percent, in either direction (a threshold of 0: by anything).
pub fn crosses(good: f64, value: f64, threshold_pct: f64) -> bool {
    relative_change_pct(good, value).abs() > threshold_pct
}

/// The threshold a deterministic metric is judged by: its own (`thresholds.metrics`), else
/// its kind's (instruction counts, or every other count), and where it comes from.
pub fn threshold_of(metric: &str, thresholds: &Thresholds) -> (f64, String) {
    match thresholds.for_metric(metric) {
        Some((key, pct)) => (pct, format!("thresholds.metrics {key:?}")),
        None if Suite::of_metric(metric) == Some(Suite::Instructions) => (
            thresholds.instructions_pct,
            "thresholds.instructions_pct".to_owned(),
        ),
        None => (
            thresholds.io_counts_pct,
            "thresholds.io_counts_pct".to_owned(),
        ),
    }
}

/// What `--filter` measures `metric` and as little else as its suite allows: the scenario of
/// an I/O or heap count, the benchmark of an instruction count, the statement of a plan.
/// `None` for a metric of no suite.
pub fn selection_of(metric: &str) -> Option<String> {
    match Suite::of_metric(metric)? {
        Suite::Plans => Some(metric.to_owned()),
        suite => Some(format!("{}{}", suite.prefix(), bench_of(metric))),
    }
}

/// A binary search over a path of commits, oldest first: index 0 the good end, the last the
/// bad end (which crosses). Ask [`next`](Self::next) which index to look at, say what it
/// showed with [`crossed`](Self::crossed), until `next` is `None`: [`first`](Self::first) is
/// then the first commit that crosses. Indices strictly between the ends are asked for, at
/// most ⌈log2(len − 1)⌉ of them. Assumes that a commit crosses when its predecessor's change
/// is in it, as a deterministic count does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bisection {
    /// The newest index known not to cross.
    good: usize,
    /// The oldest index known to cross.
    bad: usize,
}

impl Bisection {
    /// A search over `len` commits (at least the two ends).
    pub fn new(len: usize) -> Self {
        assert!(len >= 2, "a bisection needs a good and a bad end");
        Self {
            good: 0,
            bad: len - 1,
        }
    }

    /// The index to look at next, `None` when the first crossing is found.
    pub fn next(&self) -> Option<usize> {
        (self.bad - self.good > 1).then(|| self.good + (self.bad - self.good) / 2)
    }

    /// What the commit at `index` (the last `next`) showed.
    pub fn crossed(&mut self, index: usize, crosses: bool) {
        if crosses {
            self.bad = index;
        } else {
            self.good = index;
        }
    }

    /// The first index that crosses (final once `next` is `None`).
    pub fn first(&self) -> usize {
        self.bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Bisection`] run to its end with a synchronous look at each commit.
    pub fn first_crossing(len: usize, mut crosses: impl FnMut(usize) -> bool) -> usize {
        let mut search = Bisection::new(len);
        while let Some(index) = search.next() {
            search.crossed(index, crosses(index));
        }
        search.first()
    }

    #[test]
    fn a_change_beyond_the_threshold_crosses_either_way_and_zero_means_any_change() {
        assert!(crosses(100.0, 102.0, 1.0));
        assert!(crosses(100.0, 98.0, 1.0));
        assert!(!crosses(100.0, 101.0, 1.0));
        assert!(crosses(30.0, 31.0, 0.0));
        assert!(!crosses(30.0, 30.0, 0.0));
        assert!(crosses(0.0, 1.0, 0.0));
    }

    #[test]
    fn the_first_crossing_of_sixteen_commits_takes_four_looks_wherever_it_is() {
        // A good end and 16 commits after it; the change is in commit `at`.
        for at in 1..=16 {
            let mut looked = Vec::new();
            let found = first_crossing(17, |index| {
                looked.push(index);
                index >= at
            });
            assert_eq!(found, at);
            assert!(looked.len() <= 4, "change at {at}: looked at {looked:?}");
            assert!(
                looked.iter().all(|&index| index > 0 && index < 16),
                "the ends are known: {looked:?}"
            );
        }
    }

    #[test]
    fn adjacent_ends_need_no_look() {
        let found = first_crossing(2, |_| panic!("nothing to look at"));
        assert_eq!(found, 1);
    }

    #[test]
    fn a_metric_is_measured_through_its_scenario_benchmark_or_statement() {
        assert_eq!(
            selection_of("io/due_cards/sql_statements").as_deref(),
            Some("io/due_cards")
        );
        assert_eq!(
            selection_of("mem/due_cards/peak_bytes").as_deref(),
            Some("mem/due_cards")
        );
        assert_eq!(
            selection_of("instructions/query/due_cards_row_decode/page_of_50").as_deref(),
            Some("instructions/due_cards_row_decode")
        );
        assert_eq!(
            selection_of("plans/due_cards_first_page").as_deref(),
            Some("plans/due_cards_first_page")
        );
        assert_eq!(selection_of("due_cards"), None);
    }

    #[test]
    fn a_metric_is_judged_by_its_own_threshold_else_its_kinds() {
        let mut thresholds = Thresholds::default();
        thresholds.metrics.insert("io/due_cards/".to_owned(), 3.0);
        assert_eq!(
            threshold_of("io/due_cards/sql_statements", &thresholds).0,
            3.0
        );
        assert_eq!(
            threshold_of("io/review_card/sql_statements", &thresholds).0,
            thresholds.io_counts_pct
        );
        assert_eq!(
            threshold_of("instructions/query/x/y", &thresholds).0,
            thresholds.instructions_pct
        );
    }
}
