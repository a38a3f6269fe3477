//! The report stage: one [`RunReport`] value holding all any renderer needs (HEAD's record, the
//! base and how it was chosen, the judgement, the target branch's history), written to the
//! output directory by one [`Exporter`] per format in one loop (`report.md`, `report.json`,
//! `report.html`, `report.bmf.json`), and the text the terminal shows. Adding a format is one
//! exporter in [`EXPORTERS`]. The renderers themselves (`render`, `html`, `bmf`) are pure.

use std::path::Path;

use anyhow::Result;

use crate::compare::{BudgetCheck, Comparison};
use crate::history::HistorySeries;
use crate::record::{self, RunRecord};
use crate::render::{self, BaselineDisclosure, Report};

/// Everything one run's reports show.
pub struct RunReport {
    pub head: RunRecord,
    pub baseline: BaselineDisclosure,
    pub comparison: Option<Comparison>,
    pub budgets: Vec<BudgetCheck>,
    /// Where HEAD's record was stored.
    pub record_path: Option<String>,
    /// The base's record (its samples are plotted beside HEAD's).
    pub base: Option<RunRecord>,
    /// Each metric's values along the target branch, with change points.
    pub history: Vec<HistorySeries>,
}

impl RunReport {
    /// The view the text renderers take.
    pub fn view(&self) -> Report<'_> {
        Report {
            head: &self.head,
            baseline: self.baseline.clone(),
            comparison: self.comparison.as_ref(),
            budgets: &self.budgets,
            record_path: self.record_path.clone(),
        }
    }
}

/// One output format of a report: the file it is written to and its bytes.
pub trait Exporter: Sync {
    /// The file's name in the output directory.
    fn file_name(&self) -> &'static str;
    fn export(&self, report: &RunReport) -> Result<Vec<u8>>;
}

/// The report as Markdown: the job summary and the pull request's comment.
pub struct Markdown;
/// The report as JSON, for scripts.
pub struct Json;
/// The report as one self-contained page with plots.
pub struct Html;
/// HEAD's metrics in Bencher Metric Format, for other tools (Bencher's `json` adapter).
pub struct BencherMetricFormat;

impl Exporter for Markdown {
    fn file_name(&self) -> &'static str {
        "report.md"
    }
    fn export(&self, report: &RunReport) -> Result<Vec<u8>> {
        Ok(render::markdown(&report.view()).into_bytes())
    }
}

impl Exporter for Json {
    fn file_name(&self) -> &'static str {
        "report.json"
    }
    fn export(&self, report: &RunReport) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec_pretty(&render::json(&report.view()))?)
    }
}

impl Exporter for Html {
    fn file_name(&self) -> &'static str {
        "report.html"
    }
    fn export(&self, report: &RunReport) -> Result<Vec<u8>> {
        Ok(crate::html::html(&report.view(), report.base.as_ref(), &report.history).into_bytes())
    }
}

impl Exporter for BencherMetricFormat {
    fn file_name(&self) -> &'static str {
        "report.bmf.json"
    }
    fn export(&self, report: &RunReport) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec_pretty(
            &crate::bmf::bencher_metric_format(&report.head),
        )?)
    }
}

/// Every format a run writes, in the order written.
pub const EXPORTERS: &[&dyn Exporter] = &[&Markdown, &Json, &Html, &BencherMetricFormat];

/// Writes the report in every format to `out_dir` (each file atomically).
pub fn write_all(report: &RunReport, out_dir: &Path) -> Result<()> {
    for exporter in EXPORTERS {
        let bytes = exporter.export(report)?;
        record::write_atomically(&out_dir.join(exporter.file_name()), &bytes)?;
    }
    Ok(())
}

/// How the terminal shows a report.
#[derive(Debug, Clone, Copy)]
pub struct TerminalStyle {
    /// Every row (`--ci`, `--verbose`), else a summary that fits `width`.
    pub every_row: bool,
    /// The terminal's width; `usize::MAX` for a pipe or a file (nothing is shortened).
    pub width: usize,
    /// Verdicts in colour (a person at a terminal, `NO_COLOR` unset, not `--ci`).
    pub coloured: bool,
}

impl TerminalStyle {
    /// The style for this process's stdout.
    pub fn detect(ci: bool, verbose: bool) -> Self {
        let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        // A terminal's width; a pipe or a file has none, and there nothing is shortened.
        let width = if is_terminal {
            console::Term::stdout()
                .size_checked()
                .map(|(_rows, columns)| usize::from(columns))
                .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
                .unwrap_or(render::DEFAULT_TERMINAL_WIDTH)
        } else {
            usize::MAX
        };
        Self {
            every_row: ci || verbose,
            width,
            coloured: !ci
                && is_terminal
                && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
        }
    }
}

/// The text the terminal shows for `report`, whose files are in `out_dir` (pure).
pub fn terminal_text(report: &RunReport, style: TerminalStyle, out_dir: &Path) -> String {
    let view = report.view();
    let text = if style.every_row {
        render::terminal(&view)
    } else {
        let full_reports = format!(
            "{}, {}",
            out_dir.join(Markdown.file_name()).display(),
            out_dir.join(Html.file_name()).display()
        );
        render::terminal_summary(&view, style.width, &full_reports)
    };
    if style.coloured {
        render::colour_verdicts(&text)
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format added here must be set aside with the previous run's reports (`outputs`), and
    /// `publish` must read the Markdown this writes.
    #[test]
    fn every_exported_file_is_one_the_outputs_and_publish_know() {
        for exporter in EXPORTERS {
            assert!(
                crate::outputs::REPORT_FILES.contains(&exporter.file_name()),
                "{} is not in outputs::REPORT_FILES: a failed run would leave the previous run's",
                exporter.file_name()
            );
        }
        assert_eq!(Markdown.file_name(), crate::publish::REPORT_FILE);
        assert_eq!(
            EXPORTERS.len() + 1,
            crate::outputs::REPORT_FILES.len(),
            "outputs::REPORT_FILES lists the exporters' files and the comment artifact"
        );
    }
}
