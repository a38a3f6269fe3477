//! Regressions injected as real commits into the fixture's code, each caught by the real
//! binary comparing the commit with its parent on real services: about 1% more instructions
//! decoding a page of due rows, and an N+1 (one extra SQL statement per card of a due page),
//! in one commit measured once, with `--paired` (so the N+1 is judged in wall time too). The
//! parent is checked out in a git worktree, built and measured in the same run, and the
//! worktree is removed; nothing the commit did not change moves. The fixture is put back to
//! its base commit afterwards. Its `report.html` is opened in headless Chromium.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use perf_tests::{
    Fixture, RunOutput, assert_torn_down, fixture, heavy, read_json, ready_services, run,
};

/// Replaces `from` (which must occur exactly once) with `to` in a file of the fixture.
pub(crate) fn edit(fixture: &Fixture, file: &str, from: &str, to: &str) {
    let path = fixture.root.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{file} no longer holds the code this test changes: {from}"
    );
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// Commits the edits, compares the commit with its parent through `--filter`, resets the
/// fixture to the parent, and returns what the run printed and reported.
fn compare_with_parent(fixture: &Fixture, message: &str, filter: &str) -> InjectedRun {
    let base = fixture.head();
    fixture.commit_all(message);
    let out = tempfile::tempdir().unwrap();
    let output = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        &base,
        "--filter",
        filter,
        "--paired",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    let worktrees_after = fixture.git(&["worktree", "list", "--porcelain"]);
    fixture.git(&["reset", "--quiet", "--hard", &base]);
    let report_path = out.path().join("report.json");
    assert!(
        Path::new(&report_path).exists(),
        "no report: {}",
        output.describe()
    );
    let report = read_json(&report_path);
    let report_html = std::fs::read_to_string(out.path().join("report.html")).unwrap_or_default();
    let report_markdown = std::fs::read_to_string(out.path().join("report.md")).unwrap_or_default();
    assert_eq!(report["baseline"]["commit"], base.as_str(), "{report:#}");
    let baseline = &report["baseline"];
    let described = format!("baseline: {baseline:#}\n{}", output.describe());
    InjectedRun {
        baseline_source: baseline["source"].as_str().unwrap_or_default().to_owned(),
        rows: report["rows"].as_array().cloned().unwrap_or_default(),
        described,
        output,
        worktrees_after,
        report_html,
        report_markdown,
    }
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str, described: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {described}"))
}

/// What the fixture's commit with both injected regressions measured against its parent.
struct InjectedRun {
    output: RunOutput,
    /// The run's output and the report's baseline, for failure messages.
    described: String,
    rows: Vec<serde_json::Value>,
    /// Where the base's record came from, as the report says.
    baseline_source: String,
    /// `git worktree list --porcelain` right after the run.
    worktrees_after: String,
    /// The run's `report.html`.
    report_html: String,
    /// The run's `report.md`.
    report_markdown: String,
}

/// One commit holds both regressions and one run (`--filter due_cards`, which selects the
/// row-decoding instruction benchmark and the due-list scenario) measures it against its
/// parent; each test then checks its own regression in that report. Made once, by whichever
/// test asks first.
fn injected_run() -> &'static InjectedRun {
    static RUN: OnceLock<InjectedRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let _heavy = heavy();
        let fixture = fixture();
        // About 1.3% more instructions per decoded page: 36 wasted instructions per row,
        // exactly (an assembler repetition of `nop`: no optimiser or toolchain changes its
        // count, as it would a Rust loop's), 1,800 on a page of about 135,000.
        edit(
            fixture,
            "bench-suite/src/query/cards.rs",
            "    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {\n        Ok(Self {",
            "    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {\n        // SAFETY: `nop`s only.\n        unsafe { std::arch::asm!(\".rept 36\", \"nop\", \".endr\", options(nomem, nostack, preserves_flags)) };\n        Ok(Self {",
        );
        // The classic N+1: each card of a due page fetches its word again, one statement each.
        edit(
            fixture,
            "bench-suite/src/query/cards.rs",
            "    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))",
            "    for card in &cards {\n        let _: (String,) = sqlx::query_as(\"SELECT lemma FROM words WHERE id = $1\")\n            .bind(card.word_id)\n            .fetch_one(pool)\n            .await?;\n    }\n    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))",
        );
        compare_with_parent(
            fixture,
            "perf: wasted steps per row, and each card's word fetched again",
            "due_cards",
        )
    })
}

#[test]
fn an_injected_one_percent_instruction_regression_is_flagged() {
    let run = injected_run();
    let name = "instructions/query/due_cards_row_decode/page_of_50";
    let decode = row(&run.rows, name, &run.described);
    let change = decode["change_pct"].as_f64().unwrap();
    eprintln!("{name}: {decode}");
    // 1,800 injected instructions on a page of about 135,000 (1.33%), and about 600 more
    // because the N+1 edit in the same file changes what the compiler inlines into the
    // decoding: +1.77%, the same on every machine and checkout path (see bench_suite::arena).
    assert!(
        (1.0..2.5).contains(&change),
        "the injected change is {change}%, not about 1%: {decode:#}\n{}",
        run.described
    );
    assert_eq!(
        decode["verdict"], "regression",
        "{decode:#}\n{}",
        run.described
    );
    assert_eq!(run.output.code, Some(1), "{}", run.described);
    assert!(run.output.stdout.contains(name), "{}", run.described);
}

#[test]
fn an_n_plus_one_query_is_flagged() {
    let run = injected_run();
    let statements = row(&run.rows, "io/due_cards/sql_statements", &run.described);
    let (base, head) = (
        statements["base"].as_f64().unwrap(),
        statements["head"].as_f64().unwrap(),
    );
    let cards = row(&run.rows, "io/due_cards/observed/cards", &run.described)["head"]
        .as_f64()
        .unwrap();
    assert_eq!(
        head - base,
        cards,
        "one extra statement per card: {statements:#}"
    );
    assert_eq!(statements["verdict"], "regression", "{statements:#}");
    assert_eq!(run.output.code, Some(1), "{}", run.described);
}

/// Each injected regression is explained where it is, first in its list: the instruction
/// regression by the function the `nop`s were put in (its own instructions grew, and it is in
/// the file the commit changed), the N+1 by its statement, with its text.
#[test]
fn each_injected_regression_is_explained_by_its_function_or_statement_first() {
    let run = injected_run();
    let decode = row(
        &run.rows,
        "instructions/query/due_cards_row_decode/page_of_50",
        &run.described,
    );
    let first = &decode["where"]["functions"][0];
    let name = first["name"].as_str().unwrap_or_default();
    assert!(
        name.contains("bench_suite::query::cards::") && name.ends_with("::from_row"),
        "the first function is not the decoder the nops are in: {decode:#}"
    );
    let own = first["head_exclusive"].as_i64().unwrap() - first["base_exclusive"].as_i64().unwrap();
    assert!(own >= 1_800, "36 nops x 50 rows: {first:#}");
    assert_eq!(first["in_change"], true, "{first:#}");
    assert_ne!(decode["where"]["outside_change"], true, "{decode:#}");

    let statements = row(&run.rows, "io/due_cards/sql_statements", &run.described);
    let part = &statements["where"]["parts"][0];
    assert!(
        part["name"]
            .as_str()
            .is_some_and(|name| name.starts_with("io/due_cards/sql/select_words_")),
        "{statements:#}"
    );
    let cards = row(&run.rows, "io/due_cards/observed/cards", &run.described)["head"].as_f64();
    assert_eq!(
        (part["base"].as_f64(), part["head"].as_f64()),
        (Some(0.0), cards),
        "one per card: {part:#}"
    );
    assert_eq!(
        part["text"], "SELECT lemma FROM words WHERE id = ?",
        "{part:#}"
    );
    assert!(
        run.report_markdown.contains("### Where")
            && run
                .report_markdown
                .contains("SELECT lemma FROM words WHERE id = ?"),
        "report.md has no where section:\n{}",
        run.report_markdown
    );
    assert!(
        run.output.stdout.contains("where due_cards: select_words_"),
        "{}",
        run.described
    );
}

/// A change whose own code runs in no instruction benchmark still moves some: longer words in
/// the seed (`seed::lemma`, which only the benchmarks' setups and the seeded database use) make
/// the decoders copy and validate more bytes, in functions of serde, sqlx, `core` and `alloc`
/// that the change did not touch. The report names those functions, marks none of them as in
/// the change, and labels the row as outside it rather than presenting it as the change's cost.
#[test]
fn a_move_whose_functions_are_all_outside_the_change_is_labelled_so() {
    let run = {
        let _heavy = heavy();
        let fixture = fixture();
        edit(
            fixture,
            "bench-suite/src/seed.rs",
            "        if n == 0 {\n            break;\n        }\n    }\n    out\n}",
            "        if n == 0 {\n            break;\n        }\n    }\n    out.push_str(&\"-0123456789abcdef\".repeat(12));\n    out\n}",
        );
        compare_with_parent(fixture, "seed: longer words", "instructions/")
    };
    let decode = row(
        &run.rows,
        "instructions/query/due_cards_page_decode/page_of_50",
        &run.described,
    );
    assert_eq!(decode["verdict"], "regression", "{decode:#}");
    let location = &decode["where"];
    assert_eq!(location["outside_change"], true, "{decode:#}");
    let functions = location["functions"].as_array().expect("functions");
    assert!(!functions.is_empty(), "{decode:#}");
    for function in functions {
        assert_eq!(function["in_change"], false, "{function:#}");
    }
    assert!(
        decode["rule"]
            .as_str()
            .is_some_and(|rule| rule.contains("outside the files this change touched")),
        "{decode:#}"
    );
    assert!(
        run.report_markdown
            .contains("every moved function is outside this change"),
        "report.md does not say so:\n{}",
        run.report_markdown
    );
    assert!(
        run.output
            .stdout
            .contains("every moved function is outside this change"),
        "{}",
        run.described
    );
}

/// With `--paired`, wall time is judged: the N+1 (50 more round trips to Postgres per page) makes
/// the due list far slower, and the paired test, over base and head timed in interleaved rounds
/// in this run, says so with its interval.
#[test]
fn the_n_plus_one_is_a_wall_time_regression_when_timed_side_by_side() {
    let run = injected_run();
    let due = row(&run.rows, "wall_time/query/due_cards", &run.described);
    eprintln!("wall_time/query/due_cards: {due}");
    assert_eq!(due["verdict"], "regression", "{due:#}\n{}", run.described);
    assert_eq!(due["paired"]["rounds"], 10, "{due:#}");
    let [lower, _upper] = [0, 1].map(|i| due["paired"]["interval_pct"][i].as_f64().unwrap());
    assert!(
        lower > 5.0,
        "the interval must clear the minimum effect: {due:#}"
    );
    assert!(
        due["rule"].as_str().unwrap().starts_with("paired:"),
        "{due:#}"
    );
    assert!(
        run.output.stderr.contains("paired: round 10 of 10"),
        "{}",
        run.described
    );
}

/// The parent, which has no stored record, is built and measured in a worktree in the same
/// run (never taken from a record that other data or another build made), the worktree is
/// removed and the services torn down; and the worktree's build measures exactly what the
/// head's does: no row but the injected regressions' moves.
#[test]
fn the_parent_is_measured_in_a_removed_worktree_and_nothing_else_moves() {
    let run = injected_run();
    assert!(
        run.baseline_source.contains("measured in a git worktree"),
        "{}",
        run.described
    );
    assert_torn_down(&ready_services(&run.output.stderr));
    // The run's time names the base's phases too: its build and measurement were this run's.
    let time = run
        .output
        .stdout
        .lines()
        .find(|line| line.starts_with("Time: "))
        .unwrap_or_else(|| panic!("no Time: line\n{}", run.described));
    for phase in ["services", "head: build", "base: build", "base: io_counts"] {
        assert!(time.contains(phase), "{phase} missing from {time}");
    }
    assert_eq!(
        run.worktrees_after.matches("worktree ").count(),
        1,
        "a worktree was left: {}",
        run.worktrees_after
    );
    let injected = |name: &str| {
        name == "instructions/query/due_cards_row_decode/page_of_50"
            || name.starts_with("io/due_cards/")
            // The counted calls of both due-list benchmarks.
            || name.starts_with("io/call.query.due_cards/")
            || name.starts_with("io/call.query.due_cards_next_page/")
            || name.starts_with("mem/due_cards/")
            // Both call the due list, which now makes its N+1.
            || name == "wall_time/query/due_cards"
            || name == "wall_time/query/due_cards_next_page"
    };
    // Exact counts must not move at all. Wall time is judged by a test that, on an unchanged
    // benchmark, alarms in a small share of runs (one seen in CI: `raw/due_cards_statement`
    // +7.7%, p 0.026): a verdict on it would make this test fail without a code change.
    let moved: Vec<&str> = run
        .rows
        .iter()
        .filter(|row| row["verdict"] == "regression" || row["verdict"] == "improvement")
        .filter(|row| row["kind"] != "statistical")
        .filter_map(|row| row["name"].as_str())
        .filter(|name| !injected(name))
        .collect();
    assert!(moved.is_empty(), "moved: {moved:?}\n{}", run.described);
    // `raw/due_cards_statement` runs the same statement without the layer: the N+1 is not in
    // it. Paired, the layer's due list moves by about an order of magnitude (50 more round
    // trips to Postgres); the raw statement by at most noise, far below that.
    let paired_change = |name: &str| {
        row(&run.rows, name, &run.described)["paired"]["change_pct"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} was not paired: {}", run.described))
    };
    let layer = paired_change("wall_time/query/due_cards");
    let raw = paired_change("wall_time/raw/due_cards_statement");
    assert!(layer > 200.0, "the N+1 moved the due list {layer:+.1}%");
    assert!(
        raw.abs() < 50.0,
        "the raw statement moved {raw:+.1}%, the due list {layer:+.1}%\n{}",
        run.described
    );
    let untouched = row(
        &run.rows,
        "instructions/query/due_cards_page_decode/page_of_50",
        &run.described,
    );
    assert_eq!(untouched["verdict"], "unchanged", "{untouched:#}");
    assert_eq!(untouched["change_pct"], 0.0, "{untouched:#}");
}

/// Headless Chromium (Debian's `chromium`) on `page` at `width` × `height`: the `--dump-dom`
/// of the page after its scripts ran, and a screenshot to `screenshot`.
fn chromium(page: &Path, width: u32, height: u32, screenshot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let browser = |extra: &[String]| {
        let output = Command::new("timeout")
            .arg("120")
            .arg("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium (the tests ran .ci/setup-machine.sh, which installs it)");
        assert!(
            output.status.success(),
            "chromium {extra:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dom = browser(&["--dump-dom".to_owned()]);
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    browser(&[format!("--screenshot={}", screenshot.display())]);
    dom
}

/// `report.html` as a reviewer opens it, in a real browser at 1280 px: no horizontal
/// scrolling, the verdict and the first regression (its name and numbers) on the first
/// screen, and the instruction regression's differential flame graph drawn within the width. The page itself has no scripts: the test's copy gets one that measures the laid-out
/// page. The screenshot stays at `target/perf-e2e/report-1280.png`.
#[test]
fn the_report_page_opens_on_the_verdict_and_the_first_regression_at_1280_px() {
    let run = injected_run();
    assert!(
        run.report_html.contains("<h1>Performance:"),
        "no report.html: {}",
        run.described
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let probe = r#"<pre id="probe"></pre><script>
const first = document.querySelector("section.regression");
document.getElementById("probe").textContent = JSON.stringify({
  innerWidth: window.innerWidth,
  innerHeight: window.innerHeight,
  scrollWidth: document.documentElement.scrollWidth,
  verdictBottom: document.querySelector("h1").getBoundingClientRect().bottom,
  firstRegressionBottom: first ? first.querySelector("table").getBoundingClientRect().bottom : null,
  flameWidth: Array.from(document.querySelectorAll("details.flame svg"), (svg) => svg.getBoundingClientRect().width),
});
</script></body>"#;
    std::fs::write(&page, run.report_html.replace("</body>", probe)).unwrap();
    let screenshot = perf_tests::shared_target_dir()
        .join("perf-e2e")
        .join("report-1280.png");
    let dom = chromium(&page, 1280, 800, &screenshot);
    let json = dom
        .split("<pre id=\"probe\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("the probe did not run: {dom}"));
    let layout: serde_json::Value = serde_json::from_str(json).expect("the probe's JSON");
    let number = |key: &str| {
        layout[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {layout}"))
    };
    assert_eq!(number("innerWidth"), 1280.0, "{layout}");
    assert!(
        number("scrollWidth") <= number("innerWidth"),
        "the page scrolls sideways at 1280 px: {layout}"
    );
    assert!(
        number("verdictBottom") <= number("innerHeight"),
        "the verdict is below the first screen: {layout}"
    );
    assert!(
        number("firstRegressionBottom") <= number("innerHeight"),
        "the first regression is not on the first screen: {layout}"
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    // The instruction regression has its differential flame graph (both sides were measured
    // by this harness, so both records have call edges), drawn and no wider than the window.
    let decode = "instructions/query/due_cards_row_decode/page_of_50";
    let section = run
        .report_html
        .split("<section class=\"regression\">")
        .skip(1)
        .map(|rest| rest.split("</section>").next().unwrap_or(rest))
        .find(|section| section.contains(decode))
        .unwrap_or_else(|| panic!("no section of {decode}: {}", run.described));
    assert!(
        section.contains("<details open class=\"flame\">"),
        "no flame graph under {decode}: {section}"
    );
    let flames = layout["flameWidth"].as_array().cloned().unwrap_or_default();
    assert!(!flames.is_empty(), "no flame graph laid out: {layout}");
    for width in flames.iter().filter_map(serde_json::Value::as_f64) {
        assert!(
            width > 0.0 && width <= number("innerWidth"),
            "a flame graph {width} px wide: {layout}"
        );
    }
}
