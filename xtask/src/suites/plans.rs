//! The plans suite: runs the checkout's `suite plans` against its seeded database and turns
//! each line (`{"name", "shape", "nodes"}`) into a categorical metric `plans/<query>` whose
//! `shape` is the plan's canonical shape and whose value is its node count.
//!
//! This module must never explain a statement itself or reinterpret a shape: the checkout
//! decides which statements are key and how a plan is reduced (so HEAD's harness can measure
//! an older revision), and `compare` judges the shapes.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::record::{Metric, MetricKind, Suite, Unit};

use super::SuiteError;

/// One line of `suite plans`.
#[derive(Debug, Deserialize)]
struct PlanLine {
    name: String,
    shape: String,
    nodes: u32,
    /// The plan as `EXPLAIN` prints it (absent from older revisions' output).
    #[serde(default)]
    text: String,
}

/// The plans of `suite plans`'s output: one metric per JSON line, in its order, and each
/// plan's `EXPLAIN` text by query (where the revision prints it).
pub fn parse_output(stdout: &str) -> Result<(Vec<Metric>, BTreeMap<String, String>), SuiteError> {
    let mut texts = BTreeMap::new();
    let metrics = stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            let plan: PlanLine = serde_json::from_str(line).map_err(|e| SuiteError::Output {
                suite: "plans",
                detail: format!(
                    "`suite plans` printed {line:?}, not {{\"name\", \"shape\", \"nodes\"}} ({e}).\n  \
                     fix: make bench-suite's `suite plans` print one such JSON object per line"
                ),
            })?;
            if !plan.text.is_empty() {
                texts.insert(plan.name.clone(), plan.text);
            }
            Ok(Metric {
                name: format!("plans/{}", plan.name),
                suite: Suite::Plans,
                unit: Unit::Nodes,
                kind: MetricKind::Categorical,
                value: f64::from(plan.nodes),
                interval: None,
                samples: Vec::new(),
                shape: Some(plan.shape),
            })
        })
        .collect::<Result<_, SuiteError>>()?;
    Ok((metrics, texts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_a_categorical_plan_metric() {
        let stdout = "{\"name\":\"word_by_id\",\"shape\":\"Index Scan[words_pkey on words]\",\"nodes\":1}\n\
                      {\"name\":\"due\",\"shape\":\"Limit(Seq Scan[review_cards])\",\"nodes\":2,\
                      \"text\":\"Limit\\n  ->  Seq Scan on review_cards\"}\n";
        let (metrics, texts) = parse_output(stdout).unwrap();
        assert_eq!(
            texts,
            BTreeMap::from([(
                "due".to_owned(),
                "Limit\n  ->  Seq Scan on review_cards".to_owned()
            )])
        );
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics[0].name, "plans/word_by_id");
        assert_eq!(metrics[0].kind, MetricKind::Categorical);
        assert_eq!(metrics[0].suite, Suite::Plans);
        assert_eq!(
            metrics[0].shape.as_deref(),
            Some("Index Scan[words_pkey on words]")
        );
        assert_eq!(metrics[1].value, 2.0);
    }

    #[test]
    fn a_line_that_is_not_a_plan_is_an_error_naming_it() {
        let error = parse_output("{\"name\":\"x\"}\n").unwrap_err();
        assert!(error.to_string().contains("suite plans"), "{error}");
    }
}
