//! Renderers of one [`Report`]: a terminal table, Markdown (PR comment / job summary) and JSON.
//! Pure: they format values and do no I/O; every renderer consumes the same comparison rows.
//! A plan row shows its base and head plan shapes instead of numbers, shortened around where
//! they differ in the tables; the Markdown report also lists changed plans in full.

use std::fmt::Write as _;

use serde::Serialize;

use crate::compare::{BudgetCheck, Comparison, MetricComparison, Verdict};
use crate::locate::Location;
use crate::record::{RunRecord, Suite, Unit};

/// Which baseline a report compares with, and how it was found, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BaselineDisclosure {
    Used {
        commit: String,
        how_chosen: String,
        /// "stored record <path>" or "measured in a git worktree in this run".
        source: String,
        /// Candidates that were not used, and why.
        passed_over: Vec<String>,
    },
    None {
        reason: String,
    },
}

/// Everything a report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    pub head: &'a RunRecord,
    pub baseline: BaselineDisclosure,
    pub comparison: Option<&'a Comparison>,
    /// The configured budgets, checked on this run.
    pub budgets: &'a [BudgetCheck],
    /// Where the record of this run was stored.
    pub record_path: Option<String>,
}

/// The one-line verdict: the comparison's, then broken budgets, then an acceptance.
pub fn headline(report: &Report<'_>) -> String {
    let mut line = comparison_headline(report);
    let broken = report.budgets.iter().filter(|b| b.broken).count();
    if broken > 0 {
        let _ = write!(line, " {broken} budget(s) broken.");
    }
    if let Some(acceptance) = &report.head.acceptance {
        let _ = write!(
            line,
            " Accepted by {}: {}.",
            acceptance.by,
            acceptance.reason.trim_end_matches('.')
        );
    }
    line
}

fn comparison_headline(report: &Report<'_>) -> String {
    match report.comparison {
        None => "No comparison: no baseline.".to_owned(),
        Some(c) if c.has_regression() => format!(
            "{} regression(s), {} improvement(s), {} unchanged.",
            c.count(Verdict::Regression),
            c.count(Verdict::Improvement),
            c.count(Verdict::Unchanged)
        ),
        Some(c) => format!(
            "No regression: {} improvement(s), {} unchanged.",
            c.count(Verdict::Improvement),
            c.count(Verdict::Unchanged)
        ),
    }
}

/// Formats a value in its unit, e.g. `1.23 µs`, `51 stmts`.
pub fn format_value(value: Option<f64>, unit: Unit) -> String {
    let Some(value) = value else {
        return "-".to_owned();
    };
    match unit {
        Unit::Nanoseconds => {
            let (scaled, suffix) = if value >= 1e9 {
                (value / 1e9, "s")
            } else if value >= 1e6 {
                (value / 1e6, "ms")
            } else if value >= 1e3 {
                (value / 1e3, "µs")
            } else {
                (value, "ns")
            };
            format!("{scaled:.2} {suffix}")
        }
        Unit::Microseconds => scaled(value, &[(1e6, "s"), (1e3, "ms")], "µs"),
        Unit::Milliseconds => scaled(value, &[(1e3, "s")], "ms"),
        Unit::Bytes => {
            let (scaled, suffix) = if value.abs() >= 1024.0 * 1024.0 * 1024.0 {
                (value / (1024.0 * 1024.0 * 1024.0), "GiB")
            } else if value.abs() >= 1024.0 * 1024.0 {
                (value / (1024.0 * 1024.0), "MiB")
            } else if value.abs() >= 1024.0 {
                (value / 1024.0, "KiB")
            } else {
                return format!("{value:.0} B");
            };
            format!("{scaled:.2} {suffix}")
        }
        Unit::PerSecond => format!("{value:.1} /s"),
        other => {
            let symbol = other.symbol();
            if symbol.is_empty() {
                format!("{value:.0}")
            } else {
                format!("{value:.0} {symbol}")
            }
        }
    }
}

/// `value` in the first of `steps` (divisor, suffix) it reaches, else in `base` units.
fn scaled(value: f64, steps: &[(f64, &str)], base: &str) -> String {
    for &(divisor, suffix) in steps {
        if value.abs() >= divisor {
            return format!("{:.2} {suffix}", value / divisor);
        }
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {base}")
    } else {
        format!("{value:.2} {base}")
    }
}

/// Formats a relative change, e.g. `+1.25%`.
pub fn format_change(change: Option<f64>) -> String {
    match change {
        None => "-".to_owned(),
        Some(c) if c.is_infinite() => "new > 0".to_owned(),
        Some(c) => format!("{c:+.2}%"),
    }
}

/// A verdict in a table cell: `REGRESSION`, `improvement`, `unchanged`, `info`, `n/a`.
pub fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Regression => "REGRESSION",
        Verdict::Improvement => "improvement",
        Verdict::Unchanged => "unchanged",
        Verdict::Informational => "info",
        Verdict::NotComparable => "n/a",
    }
}

/// A command that measures the worst regression's benchmark again, locally.
pub fn reproduce_command(report: &Report<'_>) -> Option<String> {
    let comparison = report.comparison?;
    let worst = comparison.worst_regression()?;
    let BaselineDisclosure::Used { commit, .. } = &report.baseline else {
        return None;
    };
    Some(format!(
        "cargo xtask perf --base {} --filter {}",
        short_sha(commit),
        bench_of(&worst.name)
    ))
}

/// The benchmark or scenario part of a metric name (`io/due_cards/sql_statements` ->
/// `due_cards`), which `--filter` selects.
pub fn bench_of(metric_name: &str) -> &str {
    // io/<scenario>/<measure>; mem/<scenario>/<measure>; load/<mix>/<measure>; plans/<query>;
    // wall_time/<group>/<bench>; instructions/<group>/<bench>/<id>.
    let mut parts = metric_name.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some(_), _) if Suite::of_metric(metric_name) == Some(Suite::Plans) => metric_name,
        (Some(scenario), _)
            if matches!(
                Suite::of_metric(metric_name),
                Some(Suite::IoCounts | Suite::Memory | Suite::Load)
            ) =>
        {
            scenario
        }
        (Some(_), Some(bench)) | (Some(bench), None) => bench,
        _ => metric_name,
    }
}

/// A commit as every output of the harness shows it: its first 10 hex digits.
pub fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

fn commit_label(record: &RunRecord) -> String {
    format!(
        "{}{}",
        short_sha(&record.commit),
        if record.dirty { " (dirty)" } else { "" }
    )
}

fn baseline_lines(baseline: &BaselineDisclosure) -> Vec<String> {
    match baseline {
        BaselineDisclosure::Used {
            commit,
            how_chosen,
            source,
            passed_over,
        } => {
            let mut lines = vec![format!(
                "Baseline: {} ({how_chosen}; {source})",
                short_sha(commit)
            )];
            lines.extend(passed_over.iter().map(|why| format!("  not used: {why}")));
            lines
        }
        BaselineDisclosure::None { reason } => vec![format!("Baseline: none ({reason})")],
    }
}

/// The terminal table: regressions first, every row, fixed-width columns.
pub fn terminal(report: &Report<'_>) -> String {
    let mut out = String::new();
    let head = report.head;
    let _ = writeln!(out, "perf: {}", headline(report));
    let _ = writeln!(
        out,
        "Head: {} ({} profile)",
        commit_label(head),
        head.profile
    );
    for line in baseline_lines(&report.baseline) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    let header = ["verdict", "metric", "base", "head", "change", "rule"];
    let rows: Vec<[String; 6]> = match report.comparison {
        Some(comparison) => comparison.rows.iter().map(table_row).collect(),
        None => head
            .metrics
            .iter()
            .map(|m| {
                [
                    "-".to_owned(),
                    m.name.clone(),
                    "-".to_owned(),
                    match &m.shape {
                        Some(shape) => shorten_shapes(shape, shape).1,
                        None => format_value(Some(m.value), m.unit),
                    },
                    "-".to_owned(),
                    String::new(),
                ]
            })
            .collect(),
    };
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            if i == 2 || i == 3 || i == 4 {
                let _ = write!(text, "{}{}  ", " ".repeat(pad), cell);
            } else if i == cells.len() - 1 {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{}{}  ", cell, " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header.map(str::to_owned));
    for row in &rows {
        line(row);
    }
    if let Some(command) = reproduce_command(report) {
        let _ = writeln!(out, "\nReproduce the worst regression: {command}");
    }
    if !report.budgets.is_empty() {
        let broken: Vec<&BudgetCheck> = report.budgets.iter().filter(|b| b.broken).collect();
        let _ = writeln!(out, "\nBudgets: {}", budget_counts(report.budgets));
        for budget in broken {
            let _ = writeln!(out, "BROKEN  {}", budget_line(budget));
        }
    }
    let _ = writeln!(out, "Time: {}", phases_line(head));
    for note in &head.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    if let Some(path) = &report.record_path {
        let _ = writeln!(out, "Record: {path}");
    }
    out
}

/// How wide a terminal summary is when the terminal does not say (written to a pipe or a
/// file, the harness passes `usize::MAX`: nothing is shortened).
pub const DEFAULT_TERMINAL_WIDTH: usize = 100;

/// The terminal report for a person: the verdict, the regressions and improvements (base,
/// head, change, certainty), one line per suite for the other rows (how many of each verdict,
/// the largest move), then where every row is (`full_reports`) and the repro command. Lines
/// fit `width` columns: names, plan shapes and certainties too long for their column are
/// shortened in the middle with `…`, never cut off silently. [`terminal`] prints every row
/// (`--verbose`, and `--ci` for logs).
pub fn terminal_summary(report: &Report<'_>, width: usize, full_reports: &str) -> String {
    let mut out = String::new();
    let head = report.head;
    let _ = writeln!(out, "perf: {}", headline(report));
    let _ = writeln!(
        out,
        "Head: {} ({} profile)",
        commit_label(head),
        head.profile
    );
    for line in baseline_lines(&report.baseline) {
        let _ = writeln!(out, "{line}");
    }
    let (flagged, others): (Vec<&MetricComparison>, Vec<&MetricComparison>) =
        match report.comparison {
            Some(comparison) => comparison
                .rows
                .iter()
                .partition(|row| matches!(row.verdict, Verdict::Regression | Verdict::Improvement)),
            None => (Vec::new(), Vec::new()),
        };
    flagged_summary(&mut out, &flagged, width);
    let _ = writeln!(out);
    match report.comparison {
        Some(_) => {
            let _ = writeln!(out, "Other rows, by suite:");
            for line in suite_lines(&others, width) {
                let _ = writeln!(out, "{line}");
            }
        }
        None => {
            let _ = writeln!(out, "Measured, by suite (nothing to compare with):");
            let mut suites: Vec<(String, usize)> = Vec::new();
            for metric in &head.metrics {
                let suite = metric.suite.to_string();
                match suites.iter_mut().find(|(name, _)| *name == suite) {
                    Some((_, count)) => *count += 1,
                    None => suites.push((suite, 1)),
                }
            }
            for (suite, count) in suites {
                let _ = writeln!(out, "  {suite:<13} {count} metrics");
            }
        }
    }
    let _ = writeln!(out, "Every row: {full_reports} (or `--verbose` here)");
    if let Some(command) = reproduce_command(report) {
        let _ = writeln!(out, "Reproduce the worst regression: {command}");
    }
    if !report.budgets.is_empty() {
        let _ = writeln!(out, "Budgets: {}", budget_counts(report.budgets));
        for budget in report.budgets.iter().filter(|b| b.broken) {
            let _ = writeln!(out, "BROKEN  {}", budget_line(budget));
        }
    }
    let _ = writeln!(out, "Time: {}", phases_line(head));
    for note in &head.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    if let Some(path) = &report.record_path {
        let _ = writeln!(out, "Record: {path}");
    }
    out
}

/// The summary's regressions, then improvements: their table, then where each moved.
fn flagged_summary(out: &mut String, flagged: &[&MetricComparison], width: usize) {
    for (verdict, title) in [
        (Verdict::Regression, "Regressions"),
        (Verdict::Improvement, "Improvements"),
    ] {
        let rows: Vec<&MetricComparison> = flagged
            .iter()
            .copied()
            .filter(|row| row.verdict == verdict)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title} ({}):", rows.len());
        summary_table(out, &rows, width);
        for row in &rows {
            if let Some(line) = where_line(row) {
                let _ = writeln!(out, "{}", shorten_end(&line, width.max(40)));
            }
        }
    }
}

/// One line on where a flagged row moved, for the terminal: its first statement, command or
/// function (the whole list is in the reports).
pub fn where_line(row: &MetricComparison) -> Option<String> {
    let location = row.location.as_ref()?;
    if let Some(function) = location.functions.first() {
        return Some(format!(
            "  where {}: {}{:+} own instructions in {}",
            bench_of(&row.name),
            if location.outside_change {
                "every moved function is outside this change; first "
            } else {
                ""
            },
            function.exclusive_change(),
            function.name,
        ));
    }
    let Some(part) = location.parts.first() else {
        let trips = location.round_trips?;
        return Some(format!(
            "  where {}: {}",
            bench_of(&row.name),
            trips.summary()
        ));
    };
    Some(format!(
        "  where {}: {} {} -> {}{}",
        bench_of(&row.name),
        part.short_name(),
        part.base,
        part.head,
        part.text
            .as_deref()
            .map_or(String::new(), |text| format!(": {text}"))
    ))
}

/// `text` in at most `max` characters: its end left out as `…` when it is longer.
fn shorten_end(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// `text` in at most `max` characters: the middle left out as `…` when it is longer.
pub fn shorten_middle(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return text.to_owned();
    }
    if max <= 1 {
        return "…".chars().take(max).collect();
    }
    let tail = (max - 1) / 2;
    let front = max - 1 - tail;
    let mut shortened: String = chars[..front].iter().collect();
    shortened.push('…');
    shortened.extend(&chars[chars.len() - tail..]);
    shortened
}

/// How the summary table gives up width when the terminal is narrow: each step narrows one
/// column (0 metric, 1 base, 2 head, 4 certainty; the change never) down to a floor, in this
/// order, until the table fits. Long certainties and plan shapes give first, the metric's name
/// last; below the last floors a line is longer than the terminal rather than unreadable.
const SUMMARY_SHRINK_STEPS: [(usize, usize); 7] = [
    (4, 12),
    (1, 16),
    (2, 16),
    (0, 40),
    (1, 10),
    (2, 10),
    (0, 24),
];
/// The narrowest the metric name of a suite line gets.
const SUMMARY_NAME_MIN_CHARS: usize = 24;

/// Rows as a table of metric, base, head, change and certainty that fits `width` columns
/// ([`SUMMARY_SHRINK_STEPS`]); cells longer than their column are shortened in the middle.
fn summary_table(out: &mut String, rows: &[&MetricComparison], width: usize) {
    let header = ["metric", "base", "head", "change", "certainty"].map(str::to_owned);
    // A plan row shows its node counts here and its two shapes under the table.
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            let [mut base, mut head, change] = value_cells(row);
            if row.base_shape.is_some() || row.head_shape.is_some() {
                base = format_value(row.base, row.unit);
                head = format_value(row.head, row.unit);
            }
            [row.name.clone(), base, head, change, certainty(row)]
        })
        .collect();
    let mut widths = header.clone().map(|cell| cell.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // Two spaces of indent, two between columns.
    let total = |widths: &[usize; 5]| widths.iter().sum::<usize>() + 2 + 2 * 4;
    for (column, floor) in SUMMARY_SHRINK_STEPS {
        let excess = total(&widths).saturating_sub(width);
        widths[column] -= excess.min(widths[column].saturating_sub(floor));
    }
    for row in std::iter::once(&header).chain(&cells) {
        let mut line = String::from(" ");
        for (index, cell) in row.iter().enumerate() {
            let cell = shorten_middle(cell, widths[index]);
            if index == 0 {
                let _ = write!(line, " {cell:<w$}", w = widths[index]);
            } else if index == 4 {
                let _ = write!(line, "  {cell:<w$}", w = widths[index]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = widths[index]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for row in rows {
        if row.base_shape.is_none() && row.head_shape.is_none() {
            continue;
        }
        let (base, head) = shorten_shapes(
            row.base_shape.as_deref().unwrap_or("-"),
            row.head_shape.as_deref().unwrap_or("-"),
        );
        let room = width.saturating_sub(10).max(SUMMARY_NAME_MIN_CHARS);
        let name = shorten_middle(&row.name, width.saturating_sub(3));
        let _ = writeln!(out, "  {name}:");
        let _ = writeln!(out, "    base: {}", shorten_middle(&base, room));
        let _ = writeln!(out, "    head: {}", shorten_middle(&head, room));
    }
}

/// The rows of one suite that are neither regressions nor improvements, in words.
pub struct SuiteSummary<'a> {
    pub suite: crate::record::Suite,
    pub rows: Vec<&'a MetricComparison>,
    /// How many of each verdict, e.g. `118 unchanged, 2 informational`.
    pub counts: String,
    /// The row that moved most, and its change; `None` when nothing moved.
    pub largest_move: Option<(&'a MetricComparison, f64)>,
}

/// `rows` grouped by suite (in the order the suites first appear).
pub fn suite_summaries<'a>(rows: &[&'a MetricComparison]) -> Vec<SuiteSummary<'a>> {
    let mut suites: Vec<(crate::record::Suite, Vec<&'a MetricComparison>)> = Vec::new();
    for row in rows {
        match suites.iter_mut().find(|(suite, _)| *suite == row.suite) {
            Some((_, rows)) => rows.push(row),
            None => suites.push((row.suite, vec![row])),
        }
    }
    suites
        .into_iter()
        .map(|(suite, rows)| {
            let counts: Vec<String> = [
                (Verdict::Regression, "regression"),
                (Verdict::Improvement, "improvement"),
                (Verdict::Unchanged, "unchanged"),
                (Verdict::Informational, "informational"),
                (Verdict::NotComparable, "not comparable"),
            ]
            .into_iter()
            .filter_map(|(verdict, word)| {
                let count = rows.iter().filter(|row| row.verdict == verdict).count();
                (count > 0).then(|| format!("{count} {word}"))
            })
            .collect();
            let largest_move = rows
                .iter()
                .filter_map(|row| Some((*row, row.change_pct.filter(|c| c.is_finite())?)))
                .filter(|(_, change)| *change != 0.0)
                .max_by(|(_, a), (_, b)| a.abs().total_cmp(&b.abs()));
            SuiteSummary {
                suite,
                rows,
                counts: counts.join(", "),
                largest_move,
            }
        })
        .collect()
}

/// One line per suite of the rows that are neither regressions nor improvements: how many of
/// each verdict, and the largest change among them.
fn suite_lines(rows: &[&MetricComparison], width: usize) -> Vec<String> {
    suite_summaries(rows)
        .into_iter()
        .map(|summary| {
            let line = format!("  {:<13} {}", summary.suite.to_string(), summary.counts);
            match summary.largest_move {
                Some((row, change)) => {
                    let tail = format!(" {}", format_change(Some(change)));
                    let prefix = format!("{line}; largest move ");
                    let room = width
                        .saturating_sub(prefix.chars().count() + tail.chars().count())
                        .max(SUMMARY_NAME_MIN_CHARS);
                    format!("{prefix}{}{tail}", shorten_middle(&row.name, room))
                }
                None => format!("{line}; nothing moved"),
            }
        })
        .collect()
}

/// The terminal table for a colour terminal: each row's verdict coloured (regressions and
/// broken budgets bold red, improvements green), and nothing else changed, so the columns stay
/// aligned. `perf` uses it when stdout is a terminal, `NO_COLOR` is unset and `--ci` is not
/// given.
pub fn terminal_coloured(report: &Report<'_>) -> String {
    colour_verdicts(&terminal(report))
}

/// Colours the first word of lines that start with a verdict of interest (ANSI SGR codes).
pub fn colour_verdicts(text: &str) -> String {
    const RED_BOLD: &str = "\x1b[1;31m";
    const GREEN: &str = "\x1b[32m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let styled = [
            ("REGRESSION", RED_BOLD),
            ("BROKEN", RED_BOLD),
            ("improvement", GREEN),
            // The summary's section titles.
            ("Regressions", RED_BOLD),
            ("Improvements", GREEN),
        ]
        .into_iter()
        .find_map(|(word, style)| {
            line.strip_prefix(word)
                .filter(|rest| rest.starts_with(' ') || rest.starts_with('\n') || rest.is_empty())
                .map(|rest| format!("{style}{word}{RESET}{rest}"))
        });
        out.push_str(styled.as_deref().unwrap_or(line));
    }
    out
}

/// Where the run's time went, e.g. `head: build 12.0 s, head: seed 1.3 s (total 13.3 s)`.
pub fn phases_line(record: &RunRecord) -> String {
    if record.phases.is_empty() {
        return "not recorded".to_owned();
    }
    let total = record.phases.iter().fold(0.0, |sum, p| sum + p.seconds);
    let parts: Vec<String> = record
        .phases
        .iter()
        .map(|p| format!("{} {:.1} s", p.name, p.seconds))
        .collect();
    format!("{} (total {total:.1} s)", parts.join(", "))
}

/// The base, head and change cells of a row: values, or plan shapes for a plan row.
pub fn value_cells(row: &MetricComparison) -> [String; 3] {
    match (&row.base_shape, &row.head_shape) {
        (None, None) => [
            format_value(row.base, row.unit),
            format_value(row.head, row.unit),
            format_change(row.change_pct),
        ],
        (base, head) => {
            let (base_cell, head_cell) = shorten_shapes(
                base.as_deref().unwrap_or_default(),
                head.as_deref().unwrap_or_default(),
            );
            let change = match (base, head) {
                (Some(b), Some(h)) if b == h => "same plan",
                (Some(_), Some(_)) => "plan changed",
                _ => "-",
            };
            [
                if base.is_some() {
                    base_cell
                } else {
                    "-".to_owned()
                },
                if head.is_some() {
                    head_cell
                } else {
                    "-".to_owned()
                },
                change.to_owned(),
            ]
        }
    }
}

/// How many characters of a plan shape a table cell shows.
pub const SHAPE_CELL_CHARS: usize = 60;

/// Two plan shapes shortened for a table cell: when one is longer than [`SHAPE_CELL_CHARS`],
/// both are cut from the plan node where they differ, with `…` where text was left out, and
/// then to the cell's width.
pub fn shorten_shapes(base: &str, head: &str) -> (String, String) {
    let base_chars: Vec<char> = base.chars().collect();
    let head_chars: Vec<char> = head.chars().collect();
    if base_chars.len() <= SHAPE_CELL_CHARS && head_chars.len() <= SHAPE_CELL_CHARS {
        return (base.to_owned(), head.to_owned());
    }
    let common_prefix = base_chars
        .iter()
        .zip(&head_chars)
        .take_while(|(a, b)| a == b)
        .count();
    // From the node where they differ (equal shapes: from their beginning).
    let start = if base == head {
        0
    } else {
        let node_start = base_chars[..common_prefix]
            .iter()
            .rposition(|c| *c == '(' || *c == ',')
            .map_or(0, |i| i + 1);
        let node_start = node_start + usize::from(base_chars.get(node_start) == Some(&' '));
        node_start.min(common_prefix)
    };
    let cut = |chars: &[char]| -> String {
        let mut text = String::new();
        if start > 0 {
            text.push('…');
        }
        let room = SHAPE_CELL_CHARS - usize::from(start > 0);
        let rest = &chars[start.min(chars.len())..];
        if rest.len() > room {
            text.extend(&rest[..room - 1]);
            text.push('…');
        } else {
            text.extend(rest);
        }
        text
    };
    (cut(&base_chars), cut(&head_chars))
}

fn table_row(row: &MetricComparison) -> [String; 6] {
    let [base, head, change] = value_cells(row);
    [
        verdict_label(row.verdict).to_owned(),
        row.name.clone(),
        base,
        head,
        change,
        row.rule.clone(),
    ]
}

/// Markdown for a PR comment or a job summary.
pub fn markdown(report: &Report<'_>) -> String {
    let mut out = String::new();
    let head = report.head;
    let _ = writeln!(out, "## Performance: {}\n", headline(report));
    for line in baseline_lines(&report.baseline) {
        let _ = writeln!(out, "{}  ", line.trim_start());
    }
    let _ = writeln!(
        out,
        "Head: `{}` ({} profile)\n",
        commit_label(head),
        head.profile
    );
    if let Some(comparison) = report.comparison {
        markdown_comparison(&mut out, comparison);
        if let Some(command) = reproduce_command(report) {
            let _ = writeln!(
                out,
                "Reproduce the worst regression locally:\n\n```\n{command}\n```\n"
            );
        }
    }
    if !report.budgets.is_empty() {
        markdown_budgets(&mut out, report.budgets);
    }
    if let Some(acceptance) = &head.acceptance {
        let _ = writeln!(
            out,
            "> **Accepted** by {}: {} ({})\n",
            acceptance.by,
            acceptance.reason,
            acceptance
                .accepted
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for note in &head.notes {
        let _ = writeln!(out, "> Note: {note}\n");
    }
    let env = &head.environment;
    let _ = writeln!(out, "<sub>Time: {}.</sub><br>", phases_line(head));
    let _ = writeln!(
        out,
        "<sub>Machine class `{}`; {}; services: {} (Postgres {}, Redis {}); {}.</sub>",
        env.machine_class,
        env.rustc,
        env.services.mode,
        env.services.postgres_version,
        env.services.redis_version,
        env.valgrind.as_deref().unwrap_or("no valgrind"),
    );
    out
}

/// The comparison's sections of the Markdown: regressions, improvements, the other rows
/// folded, and every changed plan with both shapes.
fn markdown_comparison(out: &mut String, comparison: &Comparison) {
    let section = |out: &mut String, title: &str, rows: Vec<&MetricComparison>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "### {title}\n");
        markdown_table(out, &rows);
        let _ = writeln!(out);
    };
    let of = |verdict: Verdict| -> Vec<&MetricComparison> {
        comparison
            .rows
            .iter()
            .filter(|r| r.verdict == verdict)
            .collect()
    };
    section(out, "Regressions", of(Verdict::Regression));
    section(out, "Improvements", of(Verdict::Improvement));
    markdown_where(out, comparison);
    let folded: Vec<&MetricComparison> = comparison
        .rows
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Regression | Verdict::Improvement))
        .collect();
    if !folded.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} unchanged, informational or new rows</summary>\n",
            folded.len()
        );
        markdown_table(out, &folded);
        let _ = writeln!(out, "\n</details>\n");
    }
    let changed_plans: Vec<&MetricComparison> = comparison
        .rows
        .iter()
        .filter(|r| matches!((&r.base_shape, &r.head_shape), (Some(b), Some(h)) if b != h))
        .collect();
    if !changed_plans.is_empty() {
        let _ = writeln!(out, "### Changed plans\n");
        for row in changed_plans {
            let _ = writeln!(
                out,
                "`{}` ({}): {}\n\n```\nbase: {}\nhead: {}\n```\n",
                row.name,
                verdict_label(row.verdict),
                row.rule,
                row.base_shape.as_deref().unwrap_or_default(),
                row.head_shape.as_deref().unwrap_or_default()
            );
            if let Some(explain) = row.location.as_ref().and_then(|l| l.explain.as_deref()) {
                let _ = writeln!(
                    out,
                    "<details><summary>EXPLAIN (head)</summary>\n\n```\n{explain}\n```\n\n</details>\n"
                );
            }
        }
    }
}

/// The longest statement text a Markdown table cell shows.
const STATEMENT_CELL_CHARS: usize = 160;

/// "Where" under the regressions and improvements: per moved total, folded, the statements or
/// Redis commands that moved with it (largest change first, with the statement's text), or
/// the functions an instruction count moved in.
fn markdown_where(out: &mut String, comparison: &Comparison) {
    let located: Vec<(&MetricComparison, &Location)> = comparison
        .rows
        .iter()
        .filter_map(|row| Some((row, row.location.as_deref()?)))
        .filter(|(_, location)| {
            !location.parts.is_empty()
                || !location.functions.is_empty()
                || location.round_trips.is_some()
        })
        .collect();
    if located.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Where\n");
    for (row, location) in located {
        if location.functions.is_empty() {
            markdown_parts(out, row, location);
        } else {
            markdown_functions(out, row, location);
        }
        let _ = writeln!(out, "\n</details>\n");
    }
}

/// A total's statements or commands that changed, as a folded table.
fn markdown_parts(out: &mut String, row: &MetricComparison, location: &Location) {
    let parts = &location.parts;
    let what = if crate::locate::is_redis_row(&row.name) {
        "command"
    } else {
        "statement"
    };
    let first = parts.first().map_or(String::new(), |part| {
        format!(", first <code>{}</code>", part.short_name())
    });
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code> ({}): {} {what}(s) changed{first}</summary>\n",
        row.name,
        verdict_label(row.verdict),
        parts.len(),
    );
    if let Some(trips) = location.round_trips {
        let _ = writeln!(out, "Round trips: {}.\n", trips.summary());
    }
    if parts.is_empty() {
        return;
    }
    let _ = writeln!(out, "| {what} | base | head | change | text |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|");
    for part in parts {
        let text = part.text.as_deref().map_or(String::new(), |text| {
            format!(
                "`{}`",
                shorten_middle(text, STATEMENT_CELL_CHARS).replace('|', "\\|")
            )
        });
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {:+} | {text} |",
            part.short_name(),
            part.base,
            part.head,
            part.head - part.base
        );
    }
}

/// The longest function name a Markdown table cell shows.
const FUNCTION_CELL_CHARS: usize = 120;

/// An instruction count's functions that moved, as a folded table.
fn markdown_functions(out: &mut String, row: &MetricComparison, location: &Location) {
    let first = &location.functions[0];
    let _ = writeln!(
        out,
        "<details><summary><code>{}</code> ({}): first <code>{}</code> ({:+} own instructions){}</summary>\n",
        row.name,
        verdict_label(row.verdict),
        shorten_middle(&first.name, FUNCTION_CELL_CHARS),
        first.exclusive_change(),
        if location.outside_change {
            ": every moved function is outside this change (shared code's codegen or its data moved)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "| function | own base | own head | own change | inclusive base | inclusive head | inclusive change | in the change |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|");
    for function in &location.functions {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {:+} | {} | {} | {:+} | {} |",
            shorten_middle(&function.name, FUNCTION_CELL_CHARS).replace('|', "\\|"),
            function.base_exclusive,
            function.head_exclusive,
            function.exclusive_change(),
            function.base_inclusive,
            function.head_inclusive,
            function.inclusive_change(),
            match function.in_change {
                Some(true) => "yes",
                Some(false) => "no",
                None => "?",
            }
        );
    }
}

/// The budgets' section of the Markdown, broken ones first.
fn markdown_budgets(out: &mut String, checks: &[BudgetCheck]) {
    let mut budgets: Vec<&BudgetCheck> = checks.iter().collect();
    budgets.sort_by_key(|b| !b.broken);
    let _ = writeln!(out, "### Budgets: {}\n", budget_counts(checks));
    let _ = writeln!(
        out,
        "| | metric | value | limit | |\n|---|---|---:|---|---|"
    );
    for budget in budgets {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} |",
            match (budget.broken, budget.value) {
                (true, _) => "**broken**",
                (false, Some(_)) => "kept",
                (false, None) => "not measured",
            },
            budget.metric,
            budget.value.map_or("-".to_owned(), |v| format!("{v}")),
            budget.limit,
            budget.detail.lines().next().unwrap_or_default()
        );
    }
    let _ = writeln!(out);
}

/// How sure a row's change is: "exact count", the paired test's interval of the change with
/// its raw p-value and, when its run's paired rows were judged as a family, the adjusted one;
/// or both 95% intervals in the metric's unit.
pub fn certainty(row: &MetricComparison) -> String {
    if let Some(paired) = &row.paired {
        let adjusted = match paired.family {
            Some(family)
                if family.size > 1 && family.control != crate::stats::FamilyControl::PerRow =>
            {
                format!(
                    ", {} adjusted over {}: {:.3}",
                    family.control, family.size, family.adjusted_p_value
                )
            }
            _ => String::new(),
        };
        return format!(
            "paired, {} rounds: {:.0}% CI of the change {:+.1}% to {:+.1}%, p = {:.3}{adjusted}",
            paired.rounds,
            paired.confidence * 100.0,
            paired.interval_pct[0],
            paired.interval_pct[1],
            paired.p_value
        );
    }
    match (row.base_interval, row.head_interval) {
        (Some([bl, bh]), Some([hl, hh])) => format!(
            "95% CI base {}–{}, head {}–{}",
            format_value(Some(bl), row.unit),
            format_value(Some(bh), row.unit),
            format_value(Some(hl), row.unit),
            format_value(Some(hh), row.unit)
        ),
        _ if row.kind == crate::record::MetricKind::Deterministic => "exact count".to_owned(),
        _ if row.kind == crate::record::MetricKind::Categorical => "exact label".to_owned(),
        _ => String::new(),
    }
}

fn markdown_table(out: &mut String, rows: &[&MetricComparison]) {
    let _ = writeln!(out, "| metric | base | head | change | certainty | rule |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    for row in rows {
        let [base, head, change] = value_cells(row).map(|cell| {
            if row.base_shape.is_some() || row.head_shape.is_some() {
                format!("`{}`", cell.replace('|', "\\|"))
            } else {
                cell
            }
        });
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            row.name,
            base,
            head,
            change,
            certainty(row),
            row.rule
        );
    }
}

/// `markdown` (as [`markdown`] renders it) shortened to at most `max_len` bytes, for a place
/// that holds only so much (a PR comment). Bytes, not characters: a text of `n` bytes has at
/// most `n` characters however a reader counts them, so the limit holds for every reader.
///
/// Only whole table rows are left out: first those of folded (`<details>`) tables, then those
/// of the other tables from the last table to the first (the regressions' table, which comes
/// first, loses rows last), each table from its end; under each shortened table a line says
/// how many of its rows were left out. The headline (the first line) is always kept. Only when
/// the text is still too long without any table row are whole lines cut from the end (closing
/// an open code block and `<details>`), and a last line says so.
pub fn fit_markdown(markdown: &str, max_len: usize) -> String {
    if markdown.len() <= max_len {
        return markdown.to_owned();
    }
    let lines: Vec<&str> = markdown.split_inclusive('\n').collect();
    let tables = markdown_tables(&lines);
    let mut kept: Vec<usize> = tables.iter().map(|table| table.rows.len()).collect();
    let folded_first = (0..tables.len())
        .rev()
        .filter(|&t| tables[t].folded)
        .chain((0..tables.len()).rev().filter(|&t| !tables[t].folded));
    let mut len = markdown.len();
    for t in folded_first {
        let rows = &tables[t].rows;
        while len > max_len && kept[t] > 0 {
            let note_before = left_out_note(rows.len() - kept[t]).len();
            kept[t] -= 1;
            let note_after = left_out_note(rows.len() - kept[t]).len();
            len = len - lines[rows.start + kept[t]].len() - note_before + note_after;
        }
        if len <= max_len {
            break;
        }
    }
    let mut fitted = String::with_capacity(len);
    for (i, line) in lines.iter().enumerate() {
        let table = tables
            .iter()
            .zip(&kept)
            .find(|(table, _)| table.rows.contains(&i));
        match table {
            Some((table, &kept)) => {
                if i < table.rows.start + kept {
                    fitted.push_str(line);
                }
                if i + 1 == table.rows.end && kept < table.rows.len() {
                    fitted.push_str(&left_out_note(table.rows.len() - kept));
                }
            }
            None => fitted.push_str(line),
        }
    }
    if fitted.len() <= max_len {
        fitted
    } else {
        cut_whole_lines(&fitted, max_len)
    }
}

/// The line under a table that `fit_markdown` shortened.
fn left_out_note(rows_left_out: usize) -> String {
    if rows_left_out == 0 {
        return String::new();
    }
    format!(
        "\n_{rows_left_out} row(s) of this table left out to fit in one comment: the full report \
         is the run's `report.md`._\n"
    )
}

/// The last line of a report that `fit_markdown` had to cut after its tables.
const CUT_NOTE: &str = "\n_The rest of the report was left out to fit in one comment: the full \
                        report is the run's `report.md`._\n";

/// The body rows of a Markdown table, as line numbers, and whether it is folded.
struct MarkdownTable {
    rows: std::ops::Range<usize>,
    folded: bool,
}

/// The tables of a Markdown text with at least one body row (outside code blocks): a line
/// starting with `|`, then a separator line (`|---|---:|`), then the rows, each starting with
/// `|`.
fn markdown_tables(lines: &[&str]) -> Vec<MarkdownTable> {
    let is_separator = |line: &str| {
        let line = line.trim_end();
        line.starts_with('|')
            && line.contains('-')
            && line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
    };
    let mut tables = Vec::new();
    let mut in_code_block = false;
    let mut open_details = 0_usize;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
        } else if !in_code_block {
            if line.starts_with("<details") {
                open_details += 1;
            }
            if line.contains("</details>") {
                open_details = open_details.saturating_sub(1);
            }
            if line.starts_with('|') && lines.get(i + 1).is_some_and(|next| is_separator(next)) {
                let start = i + 2;
                let end = (start..lines.len())
                    .find(|&j| !lines[j].starts_with('|'))
                    .unwrap_or(lines.len());
                if end > start {
                    tables.push(MarkdownTable {
                        rows: start..end,
                        folded: open_details > 0,
                    });
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    tables
}

/// `text` cut after its last whole line that fits in `max_len` bytes with what closes an open
/// code block and `<details>`, and [`CUT_NOTE`]. The first line is kept (cut at a character
/// boundary only when it alone is too long).
fn cut_whole_lines(text: &str, max_len: usize) -> String {
    let closing = |in_code_block: bool, open_details: usize| {
        let mut closing = String::new();
        if in_code_block {
            closing.push_str("```\n");
        }
        closing.push_str(&"</details>\n".repeat(open_details));
        closing
    };
    let mut kept = String::new();
    let (mut in_code_block, mut open_details) = (false, 0_usize);
    for line in text.split_inclusive('\n') {
        let (mut code_after, mut details_after) = (in_code_block, open_details);
        if line.trim_start().starts_with("```") {
            code_after = !code_after;
        } else if !code_after {
            details_after += usize::from(line.starts_with("<details"));
            details_after = details_after.saturating_sub(usize::from(line.contains("</details>")));
        }
        let needed =
            kept.len() + line.len() + closing(code_after, details_after).len() + CUT_NOTE.len();
        if needed > max_len {
            break;
        }
        kept.push_str(line);
        (in_code_block, open_details) = (code_after, details_after);
    }
    if kept.is_empty() {
        // Not even the first line fits beside the note: as much of it as fits, alone.
        let mut end = max_len.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return text[..end].to_owned();
    }
    kept.push_str(&closing(in_code_block, open_details));
    kept.push_str(CUT_NOTE);
    kept
}

/// `4 kept, 1 broken` (and `, 1 not measured` when a filtered run skipped some).
fn budget_counts(budgets: &[BudgetCheck]) -> String {
    let broken = budgets.iter().filter(|b| b.broken).count();
    let unmeasured = budgets
        .iter()
        .filter(|b| !b.broken && b.value.is_none())
        .count();
    let mut counts = format!(
        "{} kept, {broken} broken",
        budgets.len() - broken - unmeasured
    );
    if unmeasured > 0 {
        let _ = write!(counts, ", {unmeasured} not measured");
    }
    counts
}

/// One budget in words: `metric = value (limit): detail`.
fn budget_line(budget: &BudgetCheck) -> String {
    format!(
        "{} = {} ({}): {}",
        budget.metric,
        budget
            .value
            .map_or("not measured".to_owned(), |v| format!("{v}")),
        budget.limit,
        budget.detail
    )
}

/// The comparison as JSON, for other tools.
pub fn json(report: &Report<'_>) -> serde_json::Value {
    serde_json::json!({
        "headline": headline(report),
        "head": { "commit": report.head.commit, "dirty": report.head.dirty, "profile": report.head.profile },
        "baseline": report.baseline,
        "rows": report.comparison.map(|c| &c.rows),
        "budgets": report.budgets,
        "acceptance": report.head.acceptance,
        "reproduce": reproduce_command(report),
        "record": report.record_path,
        "notes": report.head.notes,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn colour_marks_verdict_words_only_and_keeps_every_other_byte() {
        let plain = "perf: 1 regression\nverdict     metric\nREGRESSION  io/x  +3.00%\nimprovement io/y\nunchanged   io/z\nBROKEN  budget\nREGRESSIONS are words too\n";
        let coloured = colour_verdicts(plain);
        assert!(coloured.contains("\x1b[1;31mREGRESSION\x1b[0m  io/x  +3.00%\n"));
        assert!(coloured.contains("\x1b[32mimprovement\x1b[0m io/y\n"));
        assert!(coloured.contains("\x1b[1;31mBROKEN\x1b[0m  budget\n"));
        assert!(coloured.contains("unchanged   io/z\n"));
        assert!(coloured.contains("\nREGRESSIONS are words too\n"));
        let stripped = coloured
            .replace("\x1b[1;31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
    }

    use super::*;

    #[test]
    fn bench_names_are_what_filter_selects() {
        assert_eq!(bench_of("io/due_cards/sql_statements"), "due_cards");
        assert_eq!(
            bench_of("plans/due_cards_first_page"),
            "plans/due_cards_first_page"
        );
        assert_eq!(bench_of("wall_time/cache/l1_hit"), "l1_hit");
        assert_eq!(bench_of("mem/due_cards/peak_bytes"), "due_cards");
        assert_eq!(bench_of("load/mixed/p99_us"), "mixed");
        assert_eq!(
            bench_of("instructions/cache/cache_aside_read_decode/word"),
            "cache_aside_read_decode"
        );
    }

    #[test]
    fn values_are_formatted_in_their_unit() {
        assert_eq!(format_value(Some(1_234.0), Unit::Nanoseconds), "1.23 µs");
        assert_eq!(format_value(Some(51.0), Unit::Statements), "51 stmts");
        assert_eq!(format_value(None, Unit::Statements), "-");
        assert_eq!(format_change(Some(1.234)), "+1.23%");
        assert_eq!(format_value(Some(512.0), Unit::Bytes), "512 B");
        assert_eq!(format_value(Some(1536.0), Unit::Bytes), "1.50 KiB");
        assert_eq!(format_value(Some(3.0 * 1048576.0), Unit::Bytes), "3.00 MiB");
        assert_eq!(format_value(Some(-2048.0), Unit::Bytes), "-2.00 KiB");
        assert_eq!(format_value(Some(850.0), Unit::Microseconds), "850 µs");
        assert_eq!(format_value(Some(12_500.0), Unit::Microseconds), "12.50 ms");
        assert_eq!(
            format_value(Some(2_000_000.0), Unit::Microseconds),
            "2.00 s"
        );
        assert_eq!(format_value(Some(420.0), Unit::Milliseconds), "420 ms");
        assert_eq!(format_value(Some(1234.5), Unit::PerSecond), "1234.5 /s");
        assert_eq!(format_change(Some(f64::INFINITY)), "new > 0");
    }

    #[test]
    fn long_shapes_are_cut_to_where_they_differ() {
        let short = "Index Scan[words_pkey on words]";
        assert_eq!(
            shorten_shapes(short, short),
            (short.to_owned(), short.to_owned())
        );
        let base = "Limit(Nested Loop[Inner](Index Scan[review_cards_user_due on review_cards], \
                    Index Scan[words_pkey on words]))";
        let head = "Limit(Nested Loop[Inner](Index Scan[review_cards_user_state_due on \
                    review_cards], Index Scan[words_pkey on words]))";
        let (b, h) = shorten_shapes(base, head);
        assert!(b.starts_with('…') && h.starts_with('…'), "{b} / {h}");
        assert!(b.contains("review_cards_user_due"), "{b}");
        assert!(h.contains("review_cards_user_state"), "{h}");
        assert!(b.chars().count() <= SHAPE_CELL_CHARS, "{b}");
        assert!(h.chars().count() <= SHAPE_CELL_CHARS, "{h}");
    }
}

#[cfg(test)]
mod snapshots {
    //! Snapshot tests of the terminal and Markdown renderings, on plain values (nothing
    //! volatile: fixed shas, times and environment).

    use super::*;
    use crate::compare::compare;
    use crate::config::Thresholds;
    use crate::record::{Metric, MetricKind, Suite};

    fn record(commit: &str, metrics: Vec<(&str, Suite, Unit, MetricKind, f64)>) -> RunRecord {
        let metrics: Vec<Metric> = metrics
            .into_iter()
            .map(|(name, suite, unit, kind, value)| Metric {
                name: name.to_owned(),
                suite,
                unit,
                kind,
                value,
                interval: (kind == MetricKind::Statistical).then_some([value * 0.95, value * 1.05]),
                samples: Vec::new(),
                shape: None,
            })
            .collect();
        crate::record::test_record(commit, metrics)
    }

    fn base_and_head() -> (RunRecord, RunRecord) {
        use MetricKind::{Deterministic as D, Statistical as S};
        use Suite::*;
        let base = record(
            "1111111111111111111111111111111111111111",
            vec![
                (
                    "io/due_cards/sql_statements",
                    IoCounts,
                    Unit::Statements,
                    D,
                    30.0,
                ),
                (
                    "io/cache_aside_read/redis/get",
                    IoCounts,
                    Unit::Commands,
                    D,
                    100.0,
                ),
                (
                    "instructions/cache/decode/word",
                    Instructions,
                    Unit::Instructions,
                    D,
                    2576.0,
                ),
                (
                    "wall_time/query/due_cards",
                    WallTime,
                    Unit::Nanoseconds,
                    S,
                    256_000.0,
                ),
            ],
        );
        let head = record(
            "2222222222222222222222222222222222222222",
            vec![
                (
                    "io/due_cards/sql_statements",
                    IoCounts,
                    Unit::Statements,
                    D,
                    31.0,
                ),
                (
                    "io/cache_aside_read/redis/get",
                    IoCounts,
                    Unit::Commands,
                    D,
                    100.0,
                ),
                (
                    "instructions/cache/decode/word",
                    Instructions,
                    Unit::Instructions,
                    D,
                    2400.0,
                ),
                (
                    "wall_time/query/due_cards",
                    WallTime,
                    Unit::Nanoseconds,
                    S,
                    260_000.0,
                ),
            ],
        );
        let mut base = base;
        let mut head = head;
        let plan = |name: &str, shape: &str, nodes: f64| Metric {
            name: name.to_owned(),
            suite: Plans,
            unit: Unit::Nodes,
            kind: MetricKind::Categorical,
            value: nodes,
            interval: None,
            samples: Vec::new(),
            shape: Some(shape.to_owned()),
        };
        let due = "Limit(Nested Loop[Inner](Index Scan[review_cards_user_due on review_cards], \
                   Index Scan[words_pkey on words]))";
        let lookup = "Index Scan[words_pkey on words]";
        base.metrics
            .push(plan("plans/due_cards_first_page", due, 4.0));
        base.metrics.push(plan("plans/word_by_id", lookup, 1.0));
        head.metrics.push(plan(
            "plans/due_cards_first_page",
            "Limit(Sort(Hash Join[Inner](Seq Scan[words], \
             Hash(Index Scan[review_cards_user_state_due on review_cards]))))",
            6.0,
        ));
        head.metrics.push(plan("plans/word_by_id", lookup, 1.0));
        // Where they moved: the statement the extra call is, the plan's EXPLAIN, the functions.
        let calls = |name: &str, value: f64| Metric {
            name: name.to_owned(),
            suite: IoCounts,
            unit: Unit::Statements,
            kind: D,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        };
        base.metrics
            .push(calls("io/due_cards/sql/select_review_cards_1a2b3c4d", 30.0));
        head.metrics
            .push(calls("io/due_cards/sql/select_review_cards_1a2b3c4d", 30.0));
        head.metrics
            .push(calls("io/due_cards/sql/select_words_5e6f7a8b", 1.0));
        head.details.statements.insert(
            "select_words_5e6f7a8b".to_owned(),
            "SELECT lemma FROM words WHERE id = ?".to_owned(),
        );
        head.details.plans.insert(
            "due_cards_first_page".to_owned(),
            "Limit  (cost=120.31..120.43 rows=50 width=64)\n  ->  Sort  (cost=120.31..121.56 \
             rows=500 width=64)"
                .to_owned(),
        );
        let cost = |name: &str, exclusive: u64, inclusive: u64| crate::record::FunctionCost {
            name: name.to_owned(),
            exclusive,
            inclusive,
        };
        let decode = "bench_suite::codec::decode_word";
        base.details.functions.insert(
            "instructions/cache/decode/word".to_owned(),
            vec![cost("main", 6, 2576), cost(decode, 1570, 2570)],
        );
        head.details.functions.insert(
            "instructions/cache/decode/word".to_owned(),
            vec![cost("main", 6, 2400), cost(decode, 1394, 2394)],
        );
        (base, head)
    }

    fn report<'a>(head: &'a RunRecord, comparison: &'a Comparison) -> Report<'a> {
        Report {
            head,
            baseline: BaselineDisclosure::Used {
                commit: "1111111111111111111111111111111111111111".to_owned(),
                how_chosen: "merge-base of HEAD and refs/heads/main".to_owned(),
                source: "measured in a git worktree in this run".to_owned(),
                passed_over: vec!["no stored record in target/perf/runs".to_owned()],
            },
            comparison: Some(comparison),
            budgets: &[],
            record_path: Some(
                "target/perf/runs/2222222222222222222222222222222222222222.json".to_owned(),
            ),
        }
    }

    #[test]
    fn broken_budgets_and_an_acceptance_are_in_every_rendering() {
        let base = record("1111111111111111111111111111111111111111", Vec::new());
        let mut head = record(
            "2222222222222222222222222222222222222222",
            vec![(
                "io/dashboard_warm/sql_statements",
                Suite::IoCounts,
                Unit::Statements,
                MetricKind::Deterministic,
                2.0,
            )],
        );
        let budgets = crate::compare::check_budgets(
            &head,
            &[
                crate::config::Budget {
                    metric: "io/dashboard_warm/sql_statements".to_owned(),
                    max: Some(0.0),
                    min: None,
                },
                crate::config::Budget {
                    metric: "io/dashboard_warm/sql_statements".to_owned(),
                    max: Some(5.0),
                    min: None,
                },
            ],
            false,
        );
        head.acceptance = Some(crate::record::Acceptance {
            by: "octocat".to_owned(),
            reason: "the warm dashboard now reads its goal".to_owned(),
            accepted: vec!["io/dashboard_warm/sql_statements".to_owned()],
        });
        let comparison = compare(&base, &head, &Thresholds::default());
        let report = Report {
            budgets: &budgets,
            ..report(&head, &comparison)
        };
        let line = headline(&report);
        assert!(line.contains("1 budget(s) broken."), "{line}");
        assert!(
            line.contains("Accepted by octocat: the warm dashboard now reads its goal."),
            "{line}"
        );
        let terminal = terminal(&report);
        assert!(terminal.contains("Budgets: 1 kept, 1 broken"), "{terminal}");
        assert!(
            terminal.contains(
                "BROKEN  io/dashboard_warm/sql_statements = 2 (≤ 0): 2 above the maximum 0"
            ),
            "{terminal}"
        );
        let markdown = markdown(&report);
        assert!(
            markdown.contains("| **broken** | `io/dashboard_warm/sql_statements` | 2 | ≤ 0 | 2 above the maximum 0 |"),
            "{markdown}"
        );
        assert!(markdown.contains("> **Accepted** by octocat"), "{markdown}");
        let json = json(&report);
        assert_eq!(json["budgets"][0]["broken"], true);
        assert_eq!(json["acceptance"]["by"], "octocat");
    }

    /// A report far over a PR comment's limit: 40 regressions, 1,000 improvements and 1,300
    /// unchanged rows of I/O counts.
    fn oversize_markdown() -> String {
        use MetricKind::Deterministic as D;
        let metric = |i: usize, value: f64| {
            (
                format!("io/scenario_{i:04}/sql/select_review_cards_{i:08x}"),
                Suite::IoCounts,
                Unit::Statements,
                D,
                value,
            )
        };
        let base_metrics: Vec<_> = (0..2340).map(|i| metric(i, 100.0)).collect();
        let head_metrics: Vec<_> = (0..2340)
            .map(|i| match i {
                0..40 => metric(i, 101.0),
                40..1040 => metric(i, 90.0),
                _ => metric(i, 100.0),
            })
            .collect();
        fn borrow(
            metrics: &[(String, Suite, Unit, MetricKind, f64)],
        ) -> Vec<(&str, Suite, Unit, MetricKind, f64)> {
            metrics
                .iter()
                .map(|(name, suite, unit, kind, value)| {
                    (name.as_str(), *suite, *unit, *kind, *value)
                })
                .collect()
        }
        let base = record(
            "1111111111111111111111111111111111111111",
            borrow(&base_metrics),
        );
        let head = record(
            "2222222222222222222222222222222222222222",
            borrow(&head_metrics),
        );
        let comparison = compare(&base, &head, &Thresholds::default());
        markdown(&report(&head, &comparison))
    }

    /// The numbers in the "N row(s) of this table left out" lines of a fitted report.
    fn rows_left_out(fitted: &str) -> Vec<usize> {
        fitted
            .lines()
            .filter(|line| line.contains("row(s) of this table left out"))
            .map(|line| {
                line.trim_start_matches('_')
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn an_oversize_report_loses_whole_rows_and_says_how_many() {
        const LIMIT: usize = 65_000;
        let full = oversize_markdown();
        assert!(
            full.len() > 4 * LIMIT,
            "the fixture must be oversize: {}",
            full.len()
        );
        let fitted = fit_markdown(&full, LIMIT);

        assert!(fitted.len() <= LIMIT, "{} bytes", fitted.len());
        assert!(fitted.chars().count() <= LIMIT);
        assert_eq!(
            fitted.lines().next(),
            full.lines().next(),
            "the headline is kept"
        );
        // Never a cut row: every table row left is a whole row of the full report.
        let full_lines: std::collections::HashSet<&str> = full.lines().collect();
        let table_rows = |text: &str| text.lines().filter(|l| l.starts_with("| `")).count();
        for line in fitted.lines().filter(|line| line.starts_with('|')) {
            assert!(full_lines.contains(line), "a row was cut: {line}");
        }
        // The notes count exactly the rows that are gone.
        let left_out: usize = rows_left_out(&fitted).iter().sum();
        assert!(left_out > 0);
        assert_eq!(table_rows(&full) - table_rows(&fitted), left_out);
        // Unchanged rows go first, regressions last: all 40 regressions are still there.
        let regressions = fitted
            .split("### Improvements")
            .next()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("| `io/"))
            .count();
        assert_eq!(regressions, 40, "{fitted}");
        assert_eq!(
            rows_left_out(&fitted).len(),
            2,
            "the folded table is emptied, then the improvements are shortened: {fitted}"
        );
        assert!(fitted.contains("</details>"), "the fold is still closed");
        assert!(
            fitted.contains("<sub>Machine class"),
            "what follows the tables is kept"
        );
    }

    #[test]
    fn a_report_that_fits_is_unchanged() {
        let (base, head) = base_and_head();
        let comparison = compare(&base, &head, &Thresholds::default());
        let full = markdown(&report(&head, &comparison));
        assert_eq!(fit_markdown(&full, full.len()), full);
    }

    #[test]
    fn without_rows_to_leave_out_whole_lines_are_cut_and_blocks_closed() {
        let plan = format!("```\nbase: {}\n```\n\n", "Seq Scan[words] ".repeat(20));
        let full = format!("## Performance: headline\n\n{}", plan.repeat(50));
        let fitted = fit_markdown(&full, 1_000);
        assert!(fitted.len() <= 1_000, "{} bytes", fitted.len());
        assert!(fitted.starts_with("## Performance: headline\n"));
        assert_eq!(
            fitted.matches("```").count() % 2,
            0,
            "code blocks are closed: {fitted}"
        );
        assert!(
            fitted.ends_with("the full report is the run's `report.md`._\n"),
            "{fitted}"
        );
    }

    #[test]
    fn terminal_report() {
        let (base, head) = base_and_head();
        let comparison = compare(&base, &head, &Thresholds::default());
        insta::assert_snapshot!(terminal(&report(&head, &comparison)));
    }

    /// The summary at a narrow and a wide terminal: regressions and improvements in full
    /// (names and plan shapes shortened in the middle to fit), the other rows one line per
    /// suite.
    #[test]
    fn terminal_summary_report() {
        let (base, head) = base_and_head();
        let comparison = compare(&base, &head, &Thresholds::default());
        let report = report(&head, &comparison);
        let full = "target/perf/report.md, target/perf/report.html";
        insta::assert_snapshot!("terminal_summary_80", terminal_summary(&report, 80, full));
        insta::assert_snapshot!("terminal_summary_160", terminal_summary(&report, 160, full));
    }

    #[test]
    fn the_summary_fits_the_terminal_and_marks_what_it_shortened() {
        let (base, mut head) = base_and_head();
        let long = format!(
            "io/{}/sql_statements",
            "a_very_long_scenario_name_".repeat(4)
        );
        let mut base = base;
        let mut metric = base.metrics[0].clone();
        metric.name = long.clone();
        base.metrics.push(metric.clone());
        metric.value = 99.0;
        head.metrics.push(metric);
        let comparison = compare(&base, &head, &Thresholds::default());
        let report = report(&head, &comparison);
        for width in [80, 100, 120] {
            let text = terminal_summary(&report, width, "report.md");
            let table: Vec<&str> = text.lines().filter(|line| line.starts_with("  ")).collect();
            assert!(!table.is_empty(), "{text}");
            for line in table {
                assert!(
                    line.chars().count() <= width,
                    "{} columns at width {width}: {line}",
                    line.chars().count()
                );
            }
            assert!(
                text.contains("io/a_very_long"),
                "the name's start is kept: {text}"
            );
            assert!(text.contains('…'), "the shortening is marked: {text}");
            assert!(text.contains("_statements "), "its end is kept: {text}");
        }
        assert_eq!(shorten_middle("abcdefghij", 5), "ab…ij");
        assert_eq!(shorten_middle("abc", 5), "abc");
    }

    #[test]
    fn markdown_report() {
        let (base, head) = base_and_head();
        let comparison = compare(&base, &head, &Thresholds::default());
        insta::assert_snapshot!(markdown(&report(&head, &comparison)));
    }

    /// With `--paired`, wall time is a regression row of its own, with the paired test's
    /// interval, raw and family-adjusted p-values as its certainty and the test in its rule;
    /// a second, unchanged benchmark makes the family two rows.
    #[test]
    fn markdown_report_with_wall_time_timed_side_by_side() {
        let (mut base, mut head) = base_and_head();
        for record in [&mut base, &mut head] {
            let mut l1_hit = record.metric("wall_time/query/due_cards").unwrap().clone();
            l1_hit.name = "wall_time/cache/l1_hit".to_owned();
            record.metrics.push(l1_hit);
        }
        let rounds = |factor: f64| -> Vec<f64> {
            (0..10)
                .map(|round| 256_000.0 * factor * (1.0 + 0.01 * (round % 3) as f64))
                .collect()
        };
        let paired = crate::compare::PairedSamples::from([(
            "wall_time/query/due_cards".to_owned(),
            crate::compare::RoundSamples {
                base: rounds(1.0),
                head: (0..10)
                    .map(|round| rounds(1.25)[round] * (1.0 + 0.002 * round as f64))
                    .collect(),
            },
        )]);
        let mut paired = paired;
        paired.insert(
            "wall_time/cache/l1_hit".to_owned(),
            crate::compare::RoundSamples {
                base: rounds(1.0),
                head: (0..10)
                    .map(|round| rounds(1.0)[(round + 1) % 10] * (1.0 - 0.001 * round as f64))
                    .collect(),
            },
        );
        let comparison = crate::compare::compare_paired(
            &base,
            &head,
            &Thresholds::default(),
            &crate::compare::History::new(),
            &paired,
        );
        insta::assert_snapshot!(markdown(&report(&head, &comparison)));
    }
}
