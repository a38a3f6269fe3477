//! `report.html`: one report as ONE self-contained HTML file (inline CSS and inline SVG, no
//! scripts, no external resources) to open from a CI artifact. Pure: it renders the same
//! [`Report`] values as the Markdown renderer (`render`), plus the base record's samples and
//! an optional history of the target branch, and returns a String. Plots are drawn with
//! `plotters`' SVG backend: the per-iteration samples of base and head of wall-time metrics
//! (a strip plot), and each metric's values along the target branch with its change points
//! and this run's head value. At most [`MAX_PLOTS`] plots are drawn, regressions first; the
//! page says how many were left out. Under each regressed or improved instruction row whose
//! records both have its benchmark's call edges, its differential flame graph ([`flamegraph`],
//! at most [`MAX_FLAME_GRAPHS`] a page); never in the Markdown, which is the PR comment. Every
//! text from outside is escaped ([`escape_html`]).

use std::fmt::Write as _;

use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::compare::{MetricComparison, Verdict};
use crate::flamegraph::{self, CallGraph, TreeLimits};
use crate::history::HistorySeries;
use crate::locate::Location;
use crate::record::{CallEdge, FunctionCost, MetricKind, RunRecord, Unit};
use crate::render::{self, BaselineDisclosure, Report};

/// How many plots a page holds at most, so that the file stays small.
pub const MAX_PLOTS: usize = 40;

/// How many differential flame graphs a page holds at most (regressions first): each is up to
/// about 100 KB ([`flamegraph::MAX_FRAMES`] frames with their tooltips).
pub const MAX_FLAME_GRAPHS: usize = 10;

/// `text` safe inside HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The report as one HTML page: `base` is the base record (for its samples), `history` the
/// target branch's series (empty: no history plots).
pub fn html(report: &Report<'_>, base: Option<&RunRecord>, history: &[HistorySeries]) -> String {
    html_with_limit(report, base, history, MAX_PLOTS)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;padding:0 1em;color:#222;max-width:1100px}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}h3{font-size:1em;margin:.2em 0}\
table{border-collapse:collapse;font-size:.9em;max-width:100%}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top;overflow-wrap:anywhere}\
td.num{text-align:right;white-space:nowrap}tr.regression{background:#fde8e8}tr.improvement{background:#e8f7e8}\
section{border-left:4px solid #ccc;padding:.3em .8em;margin:.8em 0}section.regression{border-color:#c33}section.improvement{border-color:#3a3}\
.rule{color:#555;font-size:.85em;margin:.3em 0}details{margin:.4em 0}summary{cursor:pointer}\
code{font-size:.95em;overflow-wrap:anywhere}.meta{color:#555;font-size:.9em}.plot{margin:1em 0}svg{max-width:100%;height:auto}\
.change-point{color:#b00}table.where{margin:.4em 0}pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85em}";

/// [`html`] with at most `max_plots` plots.
///
/// The page opens on what a reviewer needs: the verdict, then each regression and improvement
/// with its numbers, its rule and its plots; then the other rows, folded by suite; then
/// budgets, notes and the machine. No scripts, nothing loaded from outside.
pub fn html_with_limit(
    report: &Report<'_>,
    base: Option<&RunRecord>,
    history: &[HistorySeries],
    max_plots: usize,
) -> String {
    let head = report.head;
    let headline = render::headline(report);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Performance: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape_html(&headline)
    );
    let _ = writeln!(out, "<h1>Performance: {}</h1>", escape_html(&headline));
    header(&mut out, report);

    let rows = sorted_rows(report);
    let mut plots = PlotBudget {
        plots: plan_plots(&rows, base, head, history),
        left: max_plots,
    };
    let mut flames = FlameBudget {
        base,
        head,
        left: MAX_FLAME_GRAPHS,
        left_out: 0,
    };
    flagged_sections(&mut out, &rows, &mut plots, &mut flames);
    if flames.left_out > 0 {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{} flame graph(s) left out to keep this file small \
             (regressions are drawn first).</p>",
            flames.left_out
        );
    }
    if report.comparison.is_some() {
        other_rows_by_suite(&mut out, &rows, &mut plots);
    } else {
        let _ = writeln!(out, "<h2>Measured (nothing to compare with)</h2>");
        measured_tables(&mut out, head);
    }
    let shown = max_plots - plots.left;
    if plots.plots.len() > shown {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{} plot(s) left out to keep this file small (regressions \
             are plotted first).</p>",
            plots.plots.len() - shown
        );
    }
    footer(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
}

/// The plots a page may hold, in the order they are drawn, and how many more it may draw.
struct PlotBudget<'a> {
    plots: Vec<Plot<'a>>,
    left: usize,
}

impl PlotBudget<'_> {
    /// Draws the plots of the metrics `names` while the budget lasts.
    fn draw(&mut self, out: &mut String, names: &[&str]) {
        for plot in self
            .plots
            .iter()
            .filter(|plot| names.contains(&plot.metric()))
        {
            if self.left == 0 {
                break;
            }
            self.left -= 1;
            push_plot(out, plot);
        }
    }
}

/// The records a page's flame graphs are drawn from, and how many more it may draw.
struct FlameBudget<'a> {
    base: Option<&'a RunRecord>,
    head: &'a RunRecord,
    left: usize,
    /// How many rows had a flame graph to draw when none was left.
    left_out: usize,
}

impl FlameBudget<'_> {
    /// The differential flame graph of an instruction row, when both records have its
    /// benchmark's functions and call edges and the budget lasts.
    fn draw(&mut self, out: &mut String, row: &MetricComparison) {
        let Some(base) = self.base else {
            return;
        };
        let (Some(before), Some(after)) = (profile(base, &row.name), profile(self.head, &row.name))
        else {
            return;
        };
        if self.left == 0 {
            self.left_out += 1;
            return;
        }
        let Some(svg) = flamegraph::differential_svg(
            &row.name,
            &CallGraph::new(before.0, before.1),
            &CallGraph::new(after.0, after.1),
            &TreeLimits::default(),
        ) else {
            return;
        };
        self.left -= 1;
        let _ = writeln!(
            out,
            "<details open class=\"flame\"><summary>Differential flame graph: a frame is a path \
             of calls, as wide as head's instructions; <b style=\"color:#c22\">red grew</b>, \
             <b style=\"color:#22c\">blue shrank</b> (the deeper, the larger the relative \
             change), white unchanged; hover a \
             frame for base, head and change (estimated from Callgrind's call edges)</summary>"
        );
        push_svg(out, Ok(svg));
        let _ = writeln!(out, "</details>");
    }
}

/// A benchmark's functions and call edges in a record, when it has both.
fn profile<'r>(
    record: &'r RunRecord,
    metric: &str,
) -> Option<(&'r [FunctionCost], &'r [CallEdge])> {
    let functions = record.details.functions.get(metric)?;
    let calls = record.details.calls.get(metric)?;
    Some((functions, calls))
}

/// A section per regression, then per improvement: its row, its rule, its plots (and an
/// instruction row's flame graph).
fn flagged_sections(
    out: &mut String,
    rows: &[&MetricComparison],
    plots: &mut PlotBudget<'_>,
    flames: &mut FlameBudget<'_>,
) {
    for (verdict, title) in [
        (Verdict::Regression, "Regressions"),
        (Verdict::Improvement, "Improvements"),
    ] {
        let flagged: Vec<&MetricComparison> = rows
            .iter()
            .copied()
            .filter(|row| row.verdict == verdict)
            .collect();
        if flagged.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h2>{title} ({})</h2>", flagged.len());
        for row in flagged {
            let class = verdict_class(row.verdict);
            let _ = writeln!(
                out,
                "<section class=\"{class}\">\n<h3>{} <code>{}</code></h3>",
                render::verdict_label(row.verdict),
                escape_html(&row.name)
            );
            table(out, &[row], false);
            let _ = writeln!(out, "<p class=\"rule\">{}</p>", escape_html(&row.rule));
            if let Some(location) = &row.location {
                where_section(out, row, location);
            }
            if row.name.starts_with("instructions/") {
                flames.draw(out, row);
            }
            plots.draw(out, &[row.name.as_str()]);
            let _ = writeln!(out, "</section>");
        }
    }
}

/// Where a flagged row moved: the statements or commands that changed with it (largest change
/// first, each statement with its text), or the plan's `EXPLAIN`.
fn where_section(out: &mut String, row: &MetricComparison, location: &Location) {
    if let Some(trips) = location.round_trips {
        let _ = writeln!(
            out,
            "<p class=\"rule\">Round trips: {}.</p>",
            escape_html(&trips.summary())
        );
    }
    if !location.parts.is_empty() {
        let what = if crate::locate::is_redis_row(&row.name) {
            "command"
        } else {
            "statement"
        };
        let _ = writeln!(
            out,
            "<table class=\"where\">\n<tr><th>{what}</th><th>base</th><th>head</th>\
             <th>change</th><th>text</th></tr>"
        );
        for part in &location.parts {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{:+}</td><td><code>{}</code></td></tr>",
                escape_html(part.short_name()),
                part.base,
                part.head,
                part.head - part.base,
                escape_html(part.text.as_deref().unwrap_or_default())
            );
        }
        let _ = writeln!(out, "</table>");
    }
    if !location.functions.is_empty() {
        if location.outside_change {
            let _ = writeln!(
                out,
                "<p class=\"rule\">Every function whose own instructions moved is outside the \
                 files this change touched: shared code's codegen, or the data it was given, moved.</p>"
            );
        }
        let _ = writeln!(
            out,
            "<table class=\"where\">\n<tr><th>function</th><th>own base</th><th>own head</th>\
             <th>own change</th><th>inclusive change</th><th>in the change</th></tr>"
        );
        for function in &location.functions {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{:+}</td><td class=\"num\">{:+}</td><td>{}</td></tr>",
                escape_html(&function.name),
                function.base_exclusive,
                function.head_exclusive,
                function.exclusive_change(),
                function.inclusive_change(),
                match function.in_change {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                }
            );
        }
        let _ = writeln!(out, "</table>");
    }
    if let Some(explain) = &location.explain {
        let _ = writeln!(
            out,
            "<details><summary>EXPLAIN (head)</summary><pre>{}</pre></details>",
            escape_html(explain)
        );
    }
}

/// The rows neither regressed nor improved, folded by suite (`<details>`) with their plots.
fn other_rows_by_suite(out: &mut String, rows: &[&MetricComparison], plots: &mut PlotBudget<'_>) {
    let others: Vec<&MetricComparison> = rows
        .iter()
        .copied()
        .filter(|row| !matches!(row.verdict, Verdict::Regression | Verdict::Improvement))
        .collect();
    let _ = writeln!(out, "<h2>Other rows, by suite</h2>");
    for summary in render::suite_summaries(&others) {
        let moved = match summary.largest_move {
            Some((row, change)) => format!(
                "; largest move <code>{}</code> {}",
                escape_html(&row.name),
                escape_html(&render::format_change(Some(change)))
            ),
            None => "; nothing moved".to_owned(),
        };
        let _ = writeln!(
            out,
            "<details>\n<summary><b>{}</b>: {}{moved}</summary>",
            summary.suite,
            escape_html(&summary.counts)
        );
        table(out, &summary.rows, true);
        let names: Vec<&str> = summary.rows.iter().map(|row| row.name.as_str()).collect();
        plots.draw(out, &names);
        let _ = writeln!(out, "</details>");
    }
}

fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Regression => "regression",
        Verdict::Improvement => "improvement",
        _ => "",
    }
}

/// A plot with its title (and a history plot's change points).
fn push_plot(out: &mut String, plot: &Plot<'_>) {
    let _ = writeln!(out, "<div class=\"plot\">");
    match plot {
        Plot::Distribution { row, base, head } => {
            let _ = writeln!(
                out,
                "<h3><code>{}</code>: samples, base and head</h3>",
                escape_html(&row.name)
            );
            push_svg(out, distribution_svg(row, base, head));
        }
        Plot::History {
            row_name,
            unit,
            series,
            head,
        } => {
            let _ = writeln!(
                out,
                "<h3><code>{}</code>: history of the target branch</h3>",
                escape_html(row_name)
            );
            push_svg(out, history_svg(series, *unit, *head));
            for &index in &series.change_points {
                if let Some((commit, value)) = series.points.get(index) {
                    let _ = writeln!(
                        out,
                        "<p class=\"change-point\">Change point: the level shifts at \
                         <code>{}</code> ({}).</p>",
                        escape_html(commit),
                        escape_html(&render::format_value(Some(*value), *unit))
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "</div>");
}

/// A run without a comparison: head's metrics, folded by suite.
fn measured_tables(out: &mut String, head: &RunRecord) {
    let mut suites: Vec<crate::record::Suite> = Vec::new();
    for metric in &head.metrics {
        if !suites.contains(&metric.suite) {
            suites.push(metric.suite);
        }
    }
    for suite in suites {
        let metrics: Vec<_> = head.metrics.iter().filter(|m| m.suite == suite).collect();
        let _ = writeln!(
            out,
            "<details>\n<summary><b>{suite}</b>: {} metrics</summary>\n<table>\n\
             <tr><th>metric</th><th>head</th></tr>",
            metrics.len()
        );
        for metric in metrics {
            let value = match &metric.shape {
                Some(shape) => render::shorten_shapes(shape, shape).1,
                None => render::format_value(Some(metric.value), metric.unit),
            };
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
                escape_html(&metric.name),
                escape_html(&value)
            );
        }
        let _ = writeln!(out, "</table>\n</details>");
    }
}

fn header(out: &mut String, report: &Report<'_>) {
    let head = report.head;
    let _ = writeln!(
        out,
        "<p>Head: <code>{}</code>{} ({} profile)</p>",
        escape_html(render::short_sha(&head.commit)),
        if head.dirty { " (dirty)" } else { "" },
        head.profile
    );
    match &report.baseline {
        BaselineDisclosure::Used {
            commit,
            how_chosen,
            source,
            passed_over,
        } => {
            let _ = writeln!(
                out,
                "<p>Baseline: <code>{}</code> ({}; {})</p>",
                escape_html(render::short_sha(commit)),
                escape_html(how_chosen),
                escape_html(source)
            );
            if !passed_over.is_empty() {
                let _ = writeln!(out, "<ul class=\"meta\">");
                for why in passed_over {
                    let _ = writeln!(out, "<li>not used: {}</li>", escape_html(why));
                }
                let _ = writeln!(out, "</ul>");
            }
        }
        BaselineDisclosure::None { reason } => {
            let _ = writeln!(out, "<p>Baseline: none ({})</p>", escape_html(reason));
        }
    }
    if let Some(command) = render::reproduce_command(report) {
        let _ = writeln!(
            out,
            "<p>Reproduce the worst regression locally: <code>{}</code></p>",
            escape_html(&command)
        );
    }
}

fn footer(out: &mut String, report: &Report<'_>) {
    let head = report.head;
    if !report.budgets.is_empty() {
        let _ = writeln!(
            out,
            "<h2>Budgets</h2>\n<table>\n<tr><th></th><th>metric</th><th>value</th><th>limit</th><th></th></tr>"
        );
        let mut budgets: Vec<_> = report.budgets.iter().collect();
        budgets.sort_by_key(|b| !b.broken);
        for budget in budgets {
            let _ = writeln!(
                out,
                "<tr{}><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                if budget.broken {
                    " class=\"regression\""
                } else {
                    ""
                },
                match (budget.broken, budget.value) {
                    (true, _) => "<b>broken</b>",
                    (false, Some(_)) => "kept",
                    (false, None) => "not measured",
                },
                escape_html(&budget.metric),
                budget.value.map_or("-".to_owned(), |v| format!("{v}")),
                escape_html(&budget.limit.to_string()),
                escape_html(budget.detail.lines().next().unwrap_or_default())
            );
        }
        let _ = writeln!(out, "</table>");
    }
    if let Some(acceptance) = &head.acceptance {
        let _ = writeln!(
            out,
            "<p><b>Accepted</b> by {}: {} ({})</p>",
            escape_html(&acceptance.by),
            escape_html(&acceptance.reason),
            escape_html(&acceptance.accepted.join(", "))
        );
    }
    for note in &head.notes {
        let _ = writeln!(out, "<p class=\"meta\">Note: {}</p>", escape_html(note));
    }
    let env = &head.environment;
    let _ = writeln!(
        out,
        "<p class=\"meta\">Machine class <code>{}</code>; {} ({} cores); {}; {}; services: {} \
         (Postgres {}, Redis {}); {}.</p>",
        escape_html(&env.machine_class),
        escape_html(&env.cpu_model),
        env.cores,
        escape_html(&env.os),
        escape_html(&env.rustc),
        env.services.mode,
        escape_html(&env.services.postgres_version),
        escape_html(&env.services.redis_version),
        escape_html(env.valgrind.as_deref().unwrap_or("no valgrind")),
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">Time: {}.</p>",
        escape_html(&render::phases_line(head))
    );
    if let Some(path) = &report.record_path {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Record: <code>{}</code></p>",
            escape_html(path)
        );
    }
}

/// The comparison's rows, regressions first (then improvements, unchanged, ...), each group in
/// the comparison's order.
fn sorted_rows<'a>(report: &Report<'a>) -> Vec<&'a MetricComparison> {
    let mut rows: Vec<&MetricComparison> = report
        .comparison
        .map(|c| c.rows.iter().collect())
        .unwrap_or_default();
    rows.sort_by_key(|row| row.verdict);
    rows
}

/// Rows as a table; `with_names` adds the verdict and metric columns (a section of one row
/// names it in its title) and the rule.
fn table(out: &mut String, rows: &[&MetricComparison], with_names: bool) {
    let _ = writeln!(
        out,
        "<table>\n<tr>{}<th>base</th><th>head</th><th>change</th><th>certainty</th>{}</tr>",
        if with_names {
            "<th>verdict</th><th>metric</th>"
        } else {
            ""
        },
        if with_names { "<th>rule</th>" } else { "" }
    );
    for row in rows {
        let [base, head, change] = render::value_cells(row);
        let class = match verdict_class(row.verdict) {
            "" => String::new(),
            class => format!(" class=\"{class}\""),
        };
        let names = if with_names {
            format!(
                "<td>{}</td><td><code>{}</code></td>",
                render::verdict_label(row.verdict),
                escape_html(&row.name)
            )
        } else {
            String::new()
        };
        let rule = if with_names {
            format!("<td class=\"rule\">{}</td>", escape_html(&row.rule))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr{class}>{names}<td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td>{rule}</tr>",
            escape_html(&base),
            escape_html(&head),
            escape_html(&change),
            escape_html(&render::certainty(row)),
        );
    }
    let _ = writeln!(out, "</table>");
}

/// One plot the page may show.
enum Plot<'a> {
    /// Per-iteration samples of a statistical metric, base and head.
    Distribution {
        row: &'a MetricComparison,
        base: &'a [f64],
        head: &'a [f64],
    },
    /// A metric's values along the target branch, and this run's head value.
    History {
        row_name: &'a str,
        unit: Unit,
        series: &'a HistorySeries,
        head: Option<f64>,
    },
}

impl Plot<'_> {
    /// The metric plotted.
    fn metric(&self) -> &str {
        match self {
            Plot::Distribution { row, .. } => &row.name,
            Plot::History { row_name, .. } => row_name,
        }
    }
}

/// Every plot the rows allow, in the rows' order (regressions first): a distribution plot of
/// each statistical metric with samples in both records, and a history plot of each metric
/// with at least two values in the history.
fn plan_plots<'a>(
    rows: &[&'a MetricComparison],
    base: Option<&'a RunRecord>,
    head: &'a RunRecord,
    history: &'a [HistorySeries],
) -> Vec<Plot<'a>> {
    let mut plots = Vec::new();
    for row in rows {
        let samples = |record: Option<&'a RunRecord>| {
            record
                .and_then(|r| r.metric(&row.name))
                .map(|m| m.samples.as_slice())
                .filter(|samples| samples.iter().any(|v| v.is_finite()))
        };
        if row.kind == MetricKind::Statistical
            && let (Some(base), Some(head)) = (samples(base), samples(Some(head)))
        {
            plots.push(Plot::Distribution { row, base, head });
        }
        if row.kind != MetricKind::Categorical
            && let Some(series) = history
                .iter()
                .find(|s| s.metric == row.name && s.points.len() >= 2)
        {
            plots.push(Plot::History {
                row_name: &row.name,
                unit: row.unit,
                series,
                head: row.head,
            });
        }
    }
    plots
}

fn push_svg(out: &mut String, svg: Result<String, String>) {
    match svg {
        // Inline SVG in HTML needs no namespace: the page then names no URL at all.
        Ok(svg) => out.push_str(&svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)),
        Err(error) => {
            let _ = writeln!(
                out,
                "<p class=\"meta\">(plot not drawn: {})</p>",
                escape_html(&error)
            );
        }
    }
}

/// A finite range around `values`, padded by 5% (or by 1 around a single value).
fn padded_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (low, high) = values.filter(|v| v.is_finite()).fold(
        None,
        |range: Option<(f64, f64)>, v| match range {
            None => Some((v, v)),
            Some((low, high)) => Some((low.min(v), high.max(v))),
        },
    )?;
    let pad = if high > low {
        (high - low) * 0.05
    } else {
        (low.abs() * 0.05).max(1.0)
    };
    Some((low - pad, high + pad))
}

const BASE_COLOR: RGBColor = RGBColor(31, 119, 180);
const HEAD_COLOR: RGBColor = RGBColor(255, 127, 14);
const CHANGE_COLOR: RGBColor = RGBColor(187, 0, 0);

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// A strip plot: each sample a dot (spread vertically, deterministically, so they do not
/// hide each other), base above head, each with a bar at its median.
fn distribution_svg(row: &MetricComparison, base: &[f64], head: &[f64]) -> Result<String, String> {
    let (low, high) = padded_range(base.iter().chain(head).copied()).ok_or("no finite sample")?;
    let unit = row.unit;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 170)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(50)
            .build_cartesian_2d(low..high, 0.0..2.0)
            .map_err(|e| e.to_string())?;
        let x_format = |x: &f64| render::format_value(Some(*x), unit);
        let y_format = |y: &f64| match *y {
            y if (y - 1.5).abs() < 0.01 => "base".to_owned(),
            y if (y - 0.5).abs() < 0.01 => "head".to_owned(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .draw()
            .map_err(|e| e.to_string())?;
        for (samples, center, color) in [(base, 1.5, BASE_COLOR), (head, 0.5, HEAD_COLOR)] {
            let jitter = |i: usize| ((i as f64 * 0.618_033_988_75).fract() - 0.5) * 0.6;
            chart
                .draw_series(
                    samples
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, v)| {
                            Circle::new((*v, center + jitter(i)), 3, color.mix(0.6).filled())
                        }),
                )
                .map_err(|e| e.to_string())?;
            if let Some(m) = median(samples) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(m, center - 0.4), (m, center + 0.4)],
                        color.stroke_width(3),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The values along the target branch (a line with a dot per commit), a dashed red line before
/// each change point, and this run's head value as a larger orange dot at the end.
fn history_svg(series: &HistorySeries, unit: Unit, head: Option<f64>) -> Result<String, String> {
    let values: Vec<f64> = series.points.iter().map(|(_, v)| *v).collect();
    let head = head.filter(|v| v.is_finite());
    let (low, high) = padded_range(values.iter().copied().chain(head)).ok_or("no finite value")?;
    let count = values.len() + usize::from(head.is_some());
    let labels: Vec<&str> = series
        .points
        .iter()
        .map(|(commit, _)| commit.as_str())
        .chain(head.map(|_| "head"))
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 220)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(count as f64 - 0.5), low..high)
            .map_err(|e| e.to_string())?;
        let x_format = |x: &f64| {
            let index = x.round();
            if (x - index).abs() < 1e-6 && index >= 0.0 {
                labels
                    .get(index as usize)
                    .map_or_else(String::new, |l| (*l).to_owned())
            } else {
                String::new()
            }
        };
        let y_format = |y: &f64| render::format_value(Some(*y), unit);
        chart
            .configure_mesh()
            .x_labels(count.min(8))
            .y_labels(5)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .draw()
            .map_err(|e| e.to_string())?;
        for &index in &series.change_points {
            let x = index as f64 - 0.5;
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    vec![(x, low), (x, high)],
                    6,
                    4,
                    CHANGE_COLOR.stroke_width(2),
                )))
                .map_err(|e| e.to_string())?;
        }
        let line = values.iter().enumerate().map(|(i, v)| (i as f64, *v));
        chart
            .draw_series(LineSeries::new(line.clone(), BASE_COLOR.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(line.map(|point| Circle::new(point, 3, BASE_COLOR.filled())))
            .map_err(|e| e.to_string())?;
        if let Some(head) = head {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (values.len() as f64, head),
                    6,
                    HEAD_COLOR.filled(),
                )))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::compare;
    use crate::config::Thresholds;
    use crate::history::history_series;
    use crate::record::{Metric, Suite, test_record as record};
    use crate::stats::ChangePointOptions;

    const HOSTILE: &str = "<script>alert(1)</script>";

    fn wall(name: &str, center: f64) -> Metric {
        let samples: Vec<f64> = (0..20)
            .map(|i| center * (1.0 + ((i * 7 % 11) as f64 - 5.0) / 500.0))
            .collect();
        Metric {
            name: name.to_owned(),
            suite: Suite::WallTime,
            unit: Unit::Nanoseconds,
            kind: MetricKind::Statistical,
            value: center,
            interval: Some([center * 0.99, center * 1.01]),
            samples,
            shape: None,
        }
    }

    fn count(name: &str, value: f64) -> Metric {
        Metric {
            name: name.to_owned(),
            suite: Suite::IoCounts,
            unit: Unit::Statements,
            kind: MetricKind::Deterministic,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        }
    }

    fn report<'a>(head: &'a RunRecord, comparison: &'a crate::compare::Comparison) -> Report<'a> {
        Report {
            head,
            baseline: BaselineDisclosure::Used {
                commit: "1111111111111111111111111111111111111111".to_owned(),
                how_chosen: "merge-base of HEAD and refs/heads/main".to_owned(),
                source: format!("stored record {HOSTILE}"),
                passed_over: Vec::new(),
            },
            comparison: Some(comparison),
            budgets: &[],
            record_path: None,
        }
    }

    fn fixture() -> (RunRecord, RunRecord) {
        let hostile_metric = format!("io/{HOSTILE}/sql_statements");
        let base = record(
            "1111111111111111111111111111111111111111",
            vec![
                wall("wall_time/query/due_cards", 256_000.0),
                wall("wall_time/cache/l1_hit", 40.0),
                count("io/due_cards/sql_statements", 30.0),
                count(&hostile_metric, 5.0),
            ],
        );
        let mut head = record(
            "2222222222222222222222222222222222222222",
            vec![
                wall("wall_time/query/due_cards", 256_500.0),
                wall("wall_time/cache/l1_hit", 40.0),
                count("io/due_cards/sql_statements", 31.0),
                count(&hostile_metric, 5.0),
            ],
        );
        head.notes.push(format!("a note with {HOSTILE}"));
        (base, head)
    }

    /// 12 records of `io/due_cards/sql_statements`: 30 for six commits, then 33 (a change
    /// point at index 6); the fourth commit's label is hostile.
    fn history() -> Vec<HistorySeries> {
        let records: Vec<RunRecord> = (0..12)
            .map(|i| {
                let commit = if i == 3 {
                    HOSTILE.to_owned()
                } else {
                    format!("{i:040x}")
                };
                record(
                    &commit,
                    vec![count(
                        "io/due_cards/sql_statements",
                        if i < 6 { 30.0 } else { 33.0 },
                    )],
                )
            })
            .collect();
        history_series(&records, &ChangePointOptions::default())
    }

    #[test]
    fn escape_html_escapes_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("µs plain"), "µs plain");
    }

    #[test]
    fn history_series_finds_the_change_point() {
        let series = history();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].metric, "io/due_cards/sql_statements");
        assert_eq!(series[0].points.len(), 12);
        assert_eq!(series[0].change_points, vec![6]);
    }

    #[test]
    fn the_page_holds_the_headline_rows_plots_and_change_points() {
        let (base, head) = fixture();
        let comparison = compare(&base, &head, &Thresholds::default());
        let report = report(&head, &comparison);
        let history = history();
        let page = html(&report, Some(&base), &history);

        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(
            page.contains(&escape_html(&render::headline(&report))),
            "{page}"
        );
        for row in &comparison.rows {
            assert!(page.contains(&escape_html(&row.name)), "{}", row.name);
        }
        // Two distribution plots (wall time, samples on both sides) and one history plot.
        assert_eq!(page.matches("<svg").count(), 3, "{page}");
        assert!(page.contains("samples, base and head"));
        assert!(page.contains("history of the target branch"));
        assert!(page.contains("class=\"change-point\""), "{page}");
        assert!(page.contains("Change point: the level shifts at <code>0000000000</code>"));
        assert!(page.contains("Baseline: <code>1111111111</code>"));
        assert!(page.contains("Machine class <code>linux-x86_64-2c-0000abcd</code>"));
        assert!(!page.contains("plot(s) left out"));
        // Regressions first.
        let regression = page.find("REGRESSION").expect("a regression row");
        let unchanged = page.find("<td>unchanged</td>").expect("an unchanged row");
        assert!(regression < unchanged);
    }

    /// What a reviewer needs comes first: the verdict, each regression with its rule and
    /// plots in a section of its own; the other rows folded by suite, after them.
    #[test]
    fn the_page_opens_on_the_regressions_and_folds_the_other_rows_by_suite() {
        let (base, head) = fixture();
        let comparison = compare(&base, &head, &Thresholds::default());
        let report = report(&head, &comparison);
        let page = html(&report, Some(&base), &history());
        let at = |text: &str| {
            page.find(text)
                .unwrap_or_else(|| panic!("{text} not in the page: {page}"))
        };
        let regression = at("<section class=\"regression\">");
        assert!(at("<h1>") < at("Regressions (1)"));
        assert!(at("Regressions (1)") < regression);
        let section =
            &page[regression..regression + page[regression..].find("</section>").unwrap()];
        assert!(section.contains("io/due_cards/sql_statements"), "{section}");
        assert!(section.contains("class=\"rule\""), "{section}");
        assert!(
            section.contains("history of the target branch"),
            "the regression's plot is in its section: {section}"
        );
        let folded = at("<details>");
        assert!(regression < folded);
        assert!(at("<summary><b>wall_time</b>: 2 informational") > regression);
        assert!(
            at("<td>unchanged</td>") > folded,
            "unchanged rows are folded"
        );
        assert!(at("Machine class") > folded, "the machine comes last");
    }

    #[test]
    fn hostile_text_is_escaped_and_nothing_is_loaded_from_outside() {
        let (base, head) = fixture();
        let comparison = compare(&base, &head, &Thresholds::default());
        let page = html(&report(&head, &comparison), Some(&base), &history());
        assert!(!page.contains(HOSTILE), "raw hostile text");
        assert!(!page.to_lowercase().contains("<script"), "a script element");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        for external in ["http://", "https://", "src=", "href=", "url(", "@import"] {
            assert!(!page.contains(external), "{external} in the page");
        }
    }

    #[test]
    fn an_oversize_input_leaves_plots_out_and_says_how_many() {
        let names: Vec<String> = (0..30)
            .map(|i| format!("wall_time/g/bench_{i:02}"))
            .collect();
        let base = record(
            "1111111111111111111111111111111111111111",
            names.iter().map(|n| wall(n, 1000.0)).collect(),
        );
        let head = record(
            "2222222222222222222222222222222222222222",
            names.iter().map(|n| wall(n, 1000.0)).collect(),
        );
        let comparison = compare(&base, &head, &Thresholds::default());
        let page = html_with_limit(&report(&head, &comparison), Some(&base), &[], 4);
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("26 plot(s) left out"), "{page}");
        // Every row is still in the table.
        for name in &names {
            assert!(page.contains(name.as_str()), "{name}");
        }
        let full = html(&report(&head, &comparison), Some(&base), &[]);
        assert_eq!(full.matches("<svg").count(), 30);
        assert!(page.len() < full.len());
    }

    /// The whole page, pinned: a regression and an improvement with their history plots and
    /// change points, wall-time samples of both sides, the other rows folded by suite, a
    /// broken and a kept budget, notes, the machine and the time (fixed values only).
    #[test]
    fn page_snapshot() {
        let base = record(
            "1111111111111111111111111111111111111111",
            vec![
                wall("wall_time/query/due_cards", 256_000.0),
                wall("wall_time/cache/l1_hit", 40.0),
                count("io/due_cards/sql_statements", 30.0),
                count("io/dashboard_cold/sql_statements", 12.0),
                count("io/word_by_id/sql_statements", 1.0),
            ],
        );
        let mut head = record(
            "2222222222222222222222222222222222222222",
            vec![
                wall("wall_time/query/due_cards", 259_000.0),
                wall("wall_time/cache/l1_hit", 40.0),
                count("io/due_cards/sql_statements", 31.0),
                count("io/dashboard_cold/sql_statements", 10.0),
                count("io/word_by_id/sql_statements", 1.0),
            ],
        );
        head.phases = vec![
            crate::record::Phase {
                name: "head: build".to_owned(),
                seconds: 42.5,
            },
            crate::record::Phase {
                name: "head: measure".to_owned(),
                seconds: 97.25,
            },
        ];
        head.notes
            .push("server resources were not measured: external servers".to_owned());
        // 12 commits of the target branch: each count steps once, after the sixth.
        let history_records: Vec<RunRecord> = (0..12)
            .map(|i| {
                let late = i >= 6;
                record(
                    &format!("{:02x}{}", 0xa0 + i, "5e6c1b94".repeat(5))[..40],
                    vec![
                        count(
                            "io/due_cards/sql_statements",
                            if late { 31.0 } else { 30.0 },
                        ),
                        count(
                            "io/dashboard_cold/sql_statements",
                            if late { 12.0 } else { 14.0 },
                        ),
                        count("io/word_by_id/sql_statements", 1.0),
                    ],
                )
            })
            .collect();
        let history = history_series(&history_records, &ChangePointOptions::default());
        let budgets = crate::compare::check_budgets(
            &head,
            &[
                crate::config::Budget {
                    metric: "io/word_by_id/sql_statements".to_owned(),
                    max: Some(0.0),
                    min: None,
                },
                crate::config::Budget {
                    metric: "io/dashboard_cold/sql_statements".to_owned(),
                    max: Some(20.0),
                    min: None,
                },
            ],
            false,
        );
        let comparison = compare(&base, &head, &Thresholds::default());
        let report = Report {
            head: &head,
            baseline: BaselineDisclosure::Used {
                commit: "1111111111111111111111111111111111111111".to_owned(),
                how_chosen: "merge-base of HEAD and refs/heads/main".to_owned(),
                source: "measured in a git worktree in this run".to_owned(),
                passed_over: vec!["no stored record in target/perf/runs".to_owned()],
            },
            comparison: Some(&comparison),
            budgets: &budgets,
            record_path: Some(
                "target/perf/runs/2222222222222222222222222222222222222222.json".to_owned(),
            ),
        };
        let page = html(&report, Some(&base), &history);
        assert!(page.contains("Regressions (1)"), "{page}");
        assert!(page.contains("Improvements (1)"), "{page}");
        assert!(page.contains("class=\"change-point\""), "{page}");
        assert!(page.contains("samples, base and head"), "{page}");
        insta::assert_snapshot!(page);
    }

    /// An instruction benchmark of `total` instructions: `main` calls `Vec<u8>::push` for
    /// `push` of them.
    fn instructions(
        name: &str,
        total: u64,
        push: u64,
    ) -> (Metric, Vec<FunctionCost>, Vec<CallEdge>) {
        let metric = Metric {
            suite: Suite::Instructions,
            unit: Unit::Instructions,
            ..count(name, total as f64)
        };
        let cost = |name: &str, exclusive, inclusive| FunctionCost {
            name: name.to_owned(),
            exclusive,
            inclusive,
        };
        let functions = vec![
            cost("main", total - push, total),
            cost("Vec<u8>::push", push, push),
        ];
        let calls = vec![CallEdge {
            caller: "main".to_owned(),
            callee: "Vec<u8>::push".to_owned(),
            inclusive: push,
        }];
        (metric, functions, calls)
    }

    fn with_profile(
        commit: &str,
        (metric, functions, calls): (Metric, Vec<FunctionCost>, Vec<CallEdge>),
    ) -> RunRecord {
        let mut record = record(commit, vec![metric.clone()]);
        record
            .details
            .functions
            .insert(metric.name.clone(), functions);
        record.details.calls.insert(metric.name, calls);
        record
    }

    #[test]
    fn a_regressed_instruction_row_has_a_flame_graph_in_its_section() {
        let name = "instructions/cache/decode/word";
        let base = with_profile(&"1".repeat(40), instructions(name, 10_000, 2_000));
        let head = with_profile(&"2".repeat(40), instructions(name, 13_000, 5_000));
        let comparison = compare(&base, &head, &Thresholds::default());
        assert_eq!(comparison.rows[0].verdict, Verdict::Regression);
        let page = html(&report(&head, &comparison), Some(&base), &[]);
        let section = &page[page.find("<section class=\"regression\">").unwrap()..];
        let section = &section[..section.find("</section>").unwrap()];
        assert!(section.contains("Differential flame graph"), "{section}");
        assert_eq!(section.matches("<svg").count(), 1, "{section}");
        assert!(
            section.contains("<title>Vec&lt;u8&gt;::push\n"),
            "{section}"
        );
        assert!(
            section.contains("fill=\"rgb(248,58,58)\""),
            "push grew 150%: {section}"
        );
        for external in ["http://", "https://", "src=", "href="] {
            assert!(!page.contains(external), "{external} in the page");
        }

        let mut older = base.clone();
        older.details.calls.clear();
        let page = html(&report(&head, &comparison), Some(&older), &[]);
        assert!(
            !page.contains("flame graph"),
            "a base without call edges draws none"
        );
    }

    #[test]
    fn a_page_draws_at_most_max_flame_graphs_and_says_how_many_it_left_out() {
        let names: Vec<String> = (0..MAX_FLAME_GRAPHS + 2)
            .map(|i| format!("instructions/g/bench_{i:02}"))
            .collect();
        let mut base = record(&"1".repeat(40), Vec::new());
        let mut head = record(&"2".repeat(40), Vec::new());
        for name in &names {
            for (record, push) in [(&mut base, 2_000), (&mut head, 5_000)] {
                let profiled = with_profile(&record.commit, instructions(name, 8_000 + push, push));
                record.metrics.extend(profiled.metrics);
                record.details.functions.extend(profiled.details.functions);
                record.details.calls.extend(profiled.details.calls);
            }
        }
        let comparison = compare(&base, &head, &Thresholds::default());
        let page = html(&report(&head, &comparison), Some(&base), &[]);
        assert_eq!(
            page.matches("<details open class=\"flame\">").count(),
            MAX_FLAME_GRAPHS
        );
        assert!(page.contains("2 flame graph(s) left out"), "{page}");
    }

    #[test]
    fn without_a_comparison_every_head_metric_is_listed() {
        let (_, head) = fixture();
        let report = Report {
            head: &head,
            baseline: BaselineDisclosure::None {
                reason: "no base".to_owned(),
            },
            comparison: None,
            budgets: &[],
            record_path: None,
        };
        let page = html(&report, None, &[]);
        assert!(page.contains("No comparison: no baseline."));
        assert!(page.contains("Baseline: none (no base)"));
        for metric in &head.metrics {
            assert!(page.contains(&escape_html(&metric.name)), "{}", metric.name);
        }
        assert!(!page.contains("<svg"));
    }
}
