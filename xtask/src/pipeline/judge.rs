//! The judge stage, pure: the comparison of HEAD with its base (thresholds, noise bands from the
//! target branch's history, the paired test, the run's scope), the budgets, what fails the
//! gate, and an acceptance of it (`--accept`, with the acceptor passed in). Tested with plain
//! values: no git, no services, no clock.

use crate::compare::{self, BudgetCheck, Comparison, Verdict};
use crate::config::PerfMetadata;
use crate::exit::Outcome;
use crate::record::{Acceptance, RunRecord};

/// What the judge was asked beside the records.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `--filter` was given: a base metric head lacks was not measured, rather than removed.
    pub filtered: bool,
    /// The run measured a selection (`--filter` or the configured `suites`): a budget on a
    /// metric it did not measure is not checked.
    pub selected: bool,
    /// The files the change from base to head touched, for the "where" of instruction rows;
    /// empty when not known.
    pub changed_files: &'a [String],
}

/// The verdict of one run.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// HEAD against its base, when there is one.
    pub comparison: Option<Comparison>,
    pub budgets: Vec<BudgetCheck>,
    /// What fails the gate: regressed metrics and broken budgets (`budget <metric>`).
    pub failing: Vec<String>,
    pub acceptance: Option<Acceptance>,
}

impl Judgement {
    /// Success when nothing fails, or everything failing was accepted.
    pub fn outcome(&self) -> Outcome {
        if self.failing.is_empty() || self.acceptance.is_some() {
            Outcome::Success
        } else {
            Outcome::RegressionFound
        }
    }

    /// `--accept <reason>` by `acceptor`: every failing row is accepted; `false` when there was
    /// nothing to accept (no acceptance is recorded then).
    pub fn accept(&mut self, reason: &str, acceptor: String) -> bool {
        if self.failing.is_empty() {
            return false;
        }
        self.acceptance = Some(Acceptance {
            by: acceptor,
            reason: reason.to_owned(),
            accepted: self.failing.clone(),
        });
        true
    }
}

/// Judges `head` against `base` under the configured thresholds, retired metrics and budgets.
pub fn judge(
    head: &RunRecord,
    base: Option<&RunRecord>,
    metadata: &PerfMetadata,
    history: &compare::History,
    paired: &compare::PairedSamples,
    scope: Scope<'_>,
) -> Judgement {
    let comparison = base.map(|base| {
        compare::compare_in_scope(
            base,
            head,
            &metadata.thresholds,
            history,
            paired,
            compare::Scope {
                filtered: scope.filtered,
                retired: &metadata.retired,
                changed_files: scope.changed_files,
                family: metadata.paired.family,
            },
        )
    });
    let budgets = compare::check_budgets(head, &metadata.budgets, scope.selected);
    let failing = comparison
        .iter()
        .flat_map(|c| c.rows.iter())
        .filter(|row| row.verdict == Verdict::Regression)
        .map(|row| row.name.clone())
        .chain(
            budgets
                .iter()
                .filter(|b| b.broken)
                .map(|b| format!("budget {}", b.metric)),
        )
        .collect();
    Judgement {
        comparison,
        budgets,
        failing,
        acceptance: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Budget;
    use crate::record::{Metric, MetricKind, Suite, Unit, test_record};

    fn statements(value: f64) -> Metric {
        Metric {
            name: "sql/due_cards/statements".to_owned(),
            suite: Suite::IoCounts,
            unit: Unit::Count,
            kind: MetricKind::Deterministic,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        }
    }

    fn judged(base: f64, head: f64, metadata: &PerfMetadata) -> Judgement {
        let base = test_record(&"b".repeat(40), vec![statements(base)]);
        let head = test_record(&"h".repeat(40), vec![statements(head)]);
        judge(
            &head,
            Some(&base),
            metadata,
            &compare::History::new(),
            &compare::PairedSamples::new(),
            Scope {
                filtered: false,
                selected: false,
                changed_files: &[],
            },
        )
    }

    #[test]
    fn a_regression_fails_the_gate_until_it_is_accepted() {
        let mut judgement = judged(1.0, 2.0, &PerfMetadata::default());
        assert_eq!(judgement.failing, ["sql/due_cards/statements"]);
        assert_eq!(judgement.outcome(), Outcome::RegressionFound);
        assert!(judgement.accept("an extra query, on purpose", "ana".to_owned()));
        let acceptance = judgement.acceptance.as_ref().unwrap();
        assert_eq!(acceptance.by, "ana");
        assert_eq!(acceptance.accepted, judgement.failing);
        assert_eq!(judgement.outcome(), Outcome::Success);
    }

    #[test]
    fn nothing_to_accept_records_no_acceptance() {
        let mut judgement = judged(2.0, 2.0, &PerfMetadata::default());
        assert!(judgement.failing.is_empty());
        assert!(!judgement.accept("no reason", "ana".to_owned()));
        assert!(judgement.acceptance.is_none());
        assert_eq!(judgement.outcome(), Outcome::Success);
    }

    #[test]
    fn a_broken_budget_fails_without_a_base() {
        let metadata = PerfMetadata {
            budgets: vec![Budget {
                metric: "sql/due_cards/statements".to_owned(),
                min: None,
                max: Some(1.0),
            }],
            ..PerfMetadata::default()
        };
        let head = test_record(&"h".repeat(40), vec![statements(3.0)]);
        let judgement = judge(
            &head,
            None,
            &metadata,
            &compare::History::new(),
            &compare::PairedSamples::new(),
            Scope {
                filtered: false,
                selected: false,
                changed_files: &[],
            },
        );
        assert!(judgement.comparison.is_none());
        assert_eq!(judgement.failing, ["budget sql/due_cards/statements"]);
        assert_eq!(judgement.outcome(), Outcome::RegressionFound);
    }
}
