//! The pull-request lifecycle, run from the workflow files themselves (issue 13): a copy of
//! this workspace is pushed to a bare `origin`, and the events of a project's life are
//! delivered to `perf_tests::workflow::Runner`, which runs the jobs of
//! `.github/workflows/*.yml` as GitHub Actions would, against a GitHub stand-in:
//! 1. three commits land on main; `perf-baseline.yml` records each and pushes `perf-baselines`;
//! 2. PR #1 adds an N+1 and measures in two shards (`shards = 2`): `perf.yml`'s matrix runs
//!    each shard's part against the merge-base's stored record (no worktree is built), and its
//!    gate merges them, exits 1 and posts one sticky comment naming the metric;
//! 3. a fix is pushed to PR #1: the same comment is edited, exit 0;
//! 4. PR #2 regresses and is labelled `perf-accept`: exit 0, the record names the labeller; a
//!    further push with another regression exits 1;
//! 5. fork PR #3 (read-only token): the comment goes through the artifact and
//!    `perf-comment.yml`; its next run fails before measuring, and no stale comment is posted;
//! 6. two merges to main back to back (two shards each, PR #1's configuration): both records
//!    land, and a PR based on the first (checked out, as GitHub does, merged into main's tip)
//!    says which record it used.
//!
//! Every other run measures in one shard (the default): `plan`, one `measure` job, `gate`.
//!
//! The copy measures a small seed and only what `suites` selects, so that each run is short.
//! The jobs restore a cache seeded from the tests' shared target directory ([`warm_cache`]),
//! as on a repository whose CI ran before. Every step prints its time. A test binary of its
//! own: `cargo test -p perf-tests --test lifecycle` runs it alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use perf_tests::workflow::github::BOT;
use perf_tests::workflow::{Event, PullRequest, Runner, WorkflowRun, git_in};
use perf_tests::{
    append_timing, cargo_command, copy_workspace, heavy, read_json, shared_target_dir,
};
use xtask::publish::STICKY_MARKER;

const ZERO: &str = "0000000000000000000000000000000000000000";
/// The step of `perf.yml`'s gate that merges the shards' records and judges the merged one.
const PERF_STEP: &str = "cargo xtask perf --ci";
/// The step of each `perf.yml` shard job that measures.
const SHARD_STEP: &str = "cargo xtask perf --shard";
/// The step of `perf-baseline.yml`'s last job that merges the shards' records and stores one.
const BASELINE_STEP: &str = "cargo xtask perf merge, baseline add";

/// The developers' clone of the project.
struct Project {
    root: PathBuf,
}

impl Project {
    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.root)
            .env("GIT_AUTHOR_NAME", "dev")
            .env("GIT_AUTHOR_EMAIL", "dev@localhost")
            .env("GIT_COMMITTER_NAME", "dev")
            .env("GIT_COMMITTER_EMAIL", "dev@localhost")
            .output()
            .expect("git");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Replaces `from` (which must occur exactly once) with `to` in `file`.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "{file} no longer holds the code this test changes: {from}"
        );
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    fn push(&self, origin: &Path, refspec: &str) {
        self.git(&[
            "push",
            "--quiet",
            "--force",
            origin.to_str().unwrap(),
            refspec,
        ]);
    }
}

/// The classic N+1 of `tests/e2e/regressions.rs`: each card of a due page fetches its word
/// again, one statement each.
const DUE_PAGE: &str = "    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))";
const N_PLUS_ONE: &str = "    for card in &cards {\n        let _: (String,) = sqlx::query_as(\"SELECT lemma FROM words WHERE id = $1\")\n            .bind(card.word_id)\n            .fetch_one(pool)\n            .await?;\n    }\n    Ok(DuePage::from_rows(cards, DUE_PAGE_SIZE))";
const CARDS: &str = "bench-suite/src/query/cards.rs";

/// The scenario's state: the runner (origin, stand-in, caches, artifacts) and the clone.
struct Lifecycle {
    runner: Runner,
    project: Project,
    started: Instant,
    _dir: tempfile::TempDir,
}

impl Lifecycle {
    fn new() -> Self {
        perf_tests::prepare_machine();
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("perf-lifecycle-")
            .tempdir()
            .unwrap();
        let mut runner = Runner::new(&dir.path().join("github"));
        for (name, default) in [
            ("PERF_POSTGRES_IMAGE", "local/postgres:15"),
            ("PERF_REDIS_IMAGE", "local/redis:7"),
        ] {
            let value = std::env::var(name).unwrap_or_else(|_| default.to_owned());
            runner.machine_env.push((name.to_owned(), value));
        }
        let project = Project {
            root: dir.path().join("project"),
        };
        copy_workspace(&project.root);
        small_configuration(&project.root.join("Cargo.toml"));
        project.git(&["init", "--quiet", "--initial-branch=main"]);
        warm_cache(&mut runner, &project.root);
        Self {
            runner,
            project,
            started,
            _dir: dir,
        }
    }

    fn origin(&self) -> PathBuf {
        self.runner.origin.clone()
    }

    /// Pushes the clone's main to origin and delivers the push.
    fn land_on_main(&mut self) -> (String, Vec<WorkflowRun>) {
        let before = self
            .runner
            .origin_ref("refs/heads/main")
            .unwrap_or_else(|| ZERO.to_owned());
        let after = self.project.git(&["rev-parse", "main"]);
        self.project.push(&self.origin(), "main:refs/heads/main");
        let runs = self.runner.deliver(&Event::Push {
            branch: "main".to_owned(),
            before,
            after: after.clone(),
            pusher: "maintainer".to_owned(),
        });
        (after, runs)
    }

    /// Pushes the clone's HEAD as pull request `pull`'s head and delivers `action`.
    fn pull_request(
        &mut self,
        action: &str,
        pull: &PullRequest,
        sender: &str,
        label: Option<&str>,
    ) -> Vec<WorkflowRun> {
        self.project.push(
            &self.origin(),
            &format!("{}:refs/pull/{}/head", pull.head_sha, pull.number),
        );
        self.runner.deliver(&Event::PullRequest {
            action: action.to_owned(),
            pull: pull.clone(),
            sender: sender.to_owned(),
            label: label.map(str::to_owned),
        })
    }

    /// The commits with a record on origin's `perf-baselines`.
    fn recorded_commits(&self) -> Vec<String> {
        if self
            .runner
            .origin_ref("refs/heads/perf-baselines")
            .is_none()
        {
            return Vec::new();
        }
        git_in(
            &self.runner.origin,
            &["ls-tree", "-r", "--name-only", "refs/heads/perf-baselines"],
        )
        .lines()
        .filter_map(|path| path.rsplit('/').next()?.strip_suffix(".json"))
        .map(str::to_owned)
        .collect()
    }

    fn time(&self, step: &str, started: Instant) {
        append_timing(
            &format!("lifecycle: {step}"),
            Duration::ZERO,
            started.elapsed(),
        );
        eprintln!(
            "lifecycle: {step} took {:.0} s ({:.0} s in all)",
            started.elapsed().as_secs_f64(),
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Leaves the cache a repository with earlier CI runs has: main's last `perf-baseline` job
/// saved its target directory, which every job here restores (by the workflows' restore key)
/// before it builds. Without it the first job compiles every dependency in debug and release
/// (about 10 minutes on 2 cores); with it the jobs build the workspace's own crates only, as
/// they do on GitHub once a cache exists. The builds are those the jobs make (the harness in
/// debug, the `suite` binary in release), in the tests' shared target directory, where the
/// e2e tests have usually made them already, by a cargo without this test's package variables
/// (a job's environment has none: with them, every job also rebuilt `ring` and all above it,
/// about 200 s over the lifecycle when it was measured). Only the units those two builds use
/// go into the copy (cargo names what they wrote, fresh or not, in its JSON messages): the
/// shared directory also holds every test's dependencies, and each job's restore copies the
/// whole entry, so a smaller entry is a shorter restore in every job (about 3.6 GB down to
/// 1.7 GB when it was measured). Incremental state is left out too.
fn warm_cache(runner: &mut Runner, project: &Path) {
    let started = Instant::now();
    let target = shared_target_dir();
    let mut units = std::collections::BTreeSet::new();
    for args in [
        &["build", "--package", "xtask"][..],
        &[
            "build",
            "--release",
            "--package",
            "bench-suite",
            "--bin",
            "suite",
        ],
    ] {
        let output = cargo_command()
            .args(args)
            .arg("--message-format=json")
            .current_dir(project)
            .env("CARGO_TARGET_DIR", &target)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("cargo");
        assert!(output.status.success(), "cargo {args:?} in the copy failed");
        units.extend(units_built(&String::from_utf8_lossy(&output.stdout)));
    }
    assert!(units.len() > 100, "cargo named only {} units", units.len());
    let seed = runner.stores.root.join("seed-target");
    std::fs::create_dir_all(&seed).unwrap();
    for profile in ["debug", "release"] {
        // Hard links: the seed is only ever read (restoring copies it into the workspace) and
        // nothing builds in the shared target directory while this test runs, so the cache
        // costs no disk (a copy of a debug and a release build filled a CI machine's disk).
        // A temporary directory on another file system than the target gets a copy.
        let place = |how: &str| {
            let _ = std::fs::remove_dir_all(seed.join(profile));
            Command::new("cp")
                .args(["-a", how])
                .arg(target.join(profile))
                .arg(seed.join(profile))
                .stderr(std::process::Stdio::null())
                .status()
                .expect("cp")
                .success()
        };
        assert!(
            place("--link") || place("--reflink=auto"),
            "copying the {profile} build failed"
        );
        let _ = std::fs::remove_dir_all(seed.join(profile).join("incremental"));
        // Every unit's outputs, build-script directories and fingerprints are named
        // `<name>-<unit hash>[.<extension>]`: those of units the builds did not use go.
        for kind in ["deps", "build", ".fingerprint"] {
            for entry in std::fs::read_dir(seed.join(profile).join(kind)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if unit_hash(&name).is_some_and(|hash| !units.contains(hash)) {
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path).unwrap();
                    } else {
                        std::fs::remove_file(&path).unwrap();
                    }
                }
            }
        }
    }
    runner.seed_cache(project, "perf-baseline.yml", vec![("target", seed)]);
    append_timing(
        "lifecycle: the cache seeded from the shared target directory",
        Duration::ZERO,
        started.elapsed(),
    );
    eprintln!(
        "lifecycle: the cache was seeded from the shared target directory in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The hashes of the units cargo's JSON messages (`--message-format=json`) name: of every
/// artifact's file and every build script's output directory.
fn units_built(messages: &str) -> std::collections::BTreeSet<String> {
    let mut units = std::collections::BTreeSet::new();
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let mut paths: Vec<&str> = message["filenames"]
            .as_array()
            .map(|files| files.iter().filter_map(|f| f.as_str()).collect())
            .unwrap_or_default();
        paths.extend(message["out_dir"].as_str());
        for path in paths {
            units.extend(path.split('/').filter_map(unit_hash).map(str::to_owned));
        }
    }
    units
}

/// The unit hash of a name in a target directory's `deps`, `build` or `.fingerprint`
/// (`libserde-0123456789abcdef.rlib`, `serde-0123456789abcdef`): the 16 hex digits after the
/// last `-`, before any extension.
fn unit_hash(name: &str) -> Option<&str> {
    let stem = name.split('.').next().unwrap_or(name);
    let (_, hash) = stem.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

/// A small seed and only the I/O scenarios, in the copy's `[workspace.metadata.perf]`. All
/// 20,000 words stay: the `bulk_import` scenario imports cards of word ids 19,901..=20,000.
///
/// And `bench-suite` itself compiled without optimisation (its dependencies keep the release
/// profile, so the cache's build of them serves): every job builds it from its fresh checkout,
/// which took about 45 s optimised and takes about 6 s so, and what the jobs measure (SQL
/// statements, rows and Redis commands per scenario) does not depend on the optimiser.
fn small_configuration(manifest: &Path) {
    let text = std::fs::read_to_string(manifest).unwrap();
    let seed = "[workspace.metadata.perf.seed]\n";
    let start = text.find(seed).expect("a seed table") + seed.len();
    let end = start
        + text[start..]
            .find("\n\n")
            .expect("the end of the seed table");
    let mut text = format!(
        "{}users = 50\nwords = 20000\ncards = 2000{}",
        &text[..start],
        &text[end..]
    );
    // Every run measures only these (records measured so are complete for the configuration).
    let table = "[workspace.metadata.perf]\n";
    let at = text.find(table).expect("the perf table") + table.len();
    text.insert_str(at, "suites = [\"io/\"]\n");
    assert!(
        !text.contains("[profile.release"),
        "the workspace has a release profile of its own: merge the copy's with it"
    );
    text.push_str("\n[profile.release.package.bench-suite]\nopt-level = 0\n");
    std::fs::write(manifest, text).unwrap();
}

/// The one run of `workflow` among `runs`.
fn only<'a>(runs: &'a [WorkflowRun], workflow: &str) -> &'a WorkflowRun {
    let matching: Vec<&WorkflowRun> = runs.iter().filter(|r| r.workflow == workflow).collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one run of {workflow}: {}",
        runs.iter().map(WorkflowRun::describe).collect::<String>()
    );
    matching[0]
}

/// Asserts that `run`'s report (its `perf-report` artifact) compared with `commit`'s stored
/// record, not with a base it measured itself.
fn assert_stored_base(runner: &Runner, run: &WorkflowRun, commit: &str, described: &str) {
    let report = read_json(
        &runner
            .stores
            .artifact_dir(run.id, "perf-report")
            .join("report.json"),
    );
    assert_eq!(report["baseline"]["commit"], commit, "{described}");
    assert!(
        report["baseline"]["source"]
            .as_str()
            .unwrap_or_default()
            .starts_with("stored record"),
        "the PR measured its base instead of using main's stored record: {:#}\n{described}",
        report["baseline"]
    );
}

/// A file of an artifact of run `run` (JSON).
fn artifact_json(runner: &Runner, run: u64, artifact: &str, under: &str) -> Vec<serde_json::Value> {
    let dir = runner.stores.artifact_dir(run, artifact).join(under);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| read_json(&entry.unwrap().path()))
        .collect()
}

#[test]
fn the_pull_request_lifecycle_runs_from_the_workflow_files() {
    let _heavy = heavy();
    let mut life = Lifecycle::new();

    // 1. Three commits land on main; each is recorded and pushed to perf-baselines.
    let started = Instant::now();
    let mut main_commits = Vec::new();
    for n in 1..=3 {
        if n > 1 {
            let readme = life.project.root.join("README.md");
            let mut text = std::fs::read_to_string(&readme).unwrap();
            text.push_str(&format!("\n<!-- change {n} on main -->\n"));
            std::fs::write(readme, text).unwrap();
        }
        life.project.commit_all(&format!("main: commit {n}"));
        let one = Instant::now();
        let (commit, runs) = life.land_on_main();
        let run = only(&runs, "perf-baseline");
        assert_eq!(
            run.conclusion,
            "success",
            "{}",
            run.describe_with_log(BASELINE_STEP)
        );
        assert!(
            life.recorded_commits().contains(&commit),
            "no record of {commit} on origin's perf-baselines: {:?}\n{}",
            life.recorded_commits(),
            run.describe_with_log(BASELINE_STEP)
        );
        life.time(&format!("step 1, commit {n}"), one);
        main_commits.push(commit);
    }
    life.time("step 1 (three commits recorded)", started);
    let base = main_commits[2].clone();

    // 2. PR #1 adds an N+1: the merge-base's stored record is the base, exit 1, one comment.
    let started = Instant::now();
    life.project
        .git(&["checkout", "--quiet", "-b", "n-plus-one", &base]);
    life.project.edit(CARDS, DUE_PAGE, N_PLUS_ONE);
    life.project.edit(
        "Cargo.toml",
        "[workspace.metadata.perf]\n",
        "[workspace.metadata.perf]\nshards = 2\n",
    );
    let head = life
        .project
        .commit_all("query: fetch each due card's word; measured in two shards");
    let mut pr1 = PullRequest {
        number: 1,
        head_sha: head,
        head_ref: "n-plus-one".to_owned(),
        base_ref: "main".to_owned(),
        labels: Vec::new(),
        fork: false,
        author: "dev".to_owned(),
    };
    let runs = life.pull_request("opened", &pr1, "dev", None);
    let run = only(&runs, "perf");
    let step = run.step(PERF_STEP);
    let described = run.describe_with_log(PERF_STEP);
    assert_stored_base(&life.runner, run, &base, &described);
    let shards = run.steps_named(SHARD_STEP);
    assert_eq!(shards.len(), 2, "{described}");
    for (k, shard) in shards.iter().enumerate() {
        assert_eq!(
            run.job(&format!("measure ({})", k + 1)).conclusion,
            "success",
            "{described}"
        );
        // (`target/perf-base` itself may be there: the cache restored what main's recording
        // jobs built in it.)
        assert!(
            shard.log.contains(&format!("shard {}/2", k + 1))
                && !shard.log.contains("base: measuring")
                && !shard.log.contains("base: building"),
            "shard {}/2 built a base worktree, or is not that shard: {}",
            k + 1,
            shard.log
        );
    }
    assert!(step.log.contains("merged 2 shards"), "{described}");
    assert_eq!(step.exit_code, Some(1), "{described}");
    // Where a PR job's minute goes (the run prints its own breakdown).
    eprintln!(
        "lifecycle: PR #1's shards and gate:\n{}\n{}\n{}",
        shards[0].log, shards[1].log, step.log
    );
    let comments = life.runner.github.comments(1);
    assert_eq!(comments.len(), 1, "{comments:#?}\n{described}");
    assert_eq!(comments[0].login, BOT);
    assert!(comments[0].body.contains(STICKY_MARKER));
    assert!(
        comments[0].body.contains("io/due_cards/sql_statements"),
        "{}",
        comments[0].body
    );
    let comment_run = only(&runs, "perf-comment");
    assert_eq!(
        comment_run.conclusion,
        "success",
        "{}",
        comment_run.describe()
    );
    assert_eq!(
        comment_run
            .step("cargo xtask perf publish --from-artifact")
            .outcome,
        "skipped",
        "a PR of this repository posted its own comment: {}",
        comment_run.describe()
    );
    life.time("step 2 (PR #1: N+1 flagged from the stored base)", started);

    // 3. The fix is pushed: the same comment is edited, exit 0.
    let started = Instant::now();
    life.project.edit(CARDS, N_PLUS_ONE, DUE_PAGE);
    pr1.head_sha = life.project.commit_all("query: no N+1 after all");
    let first_body = comments[0].body.clone();
    let runs = life.pull_request("synchronize", &pr1, "dev", None);
    let run = only(&runs, "perf");
    assert_eq!(
        run.step(PERF_STEP).exit_code,
        Some(0),
        "{}",
        run.describe_with_log(PERF_STEP)
    );
    let comments = life.runner.github.comments(1);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert_eq!(comments[0].edits, 1, "{comments:#?}");
    assert_ne!(comments[0].body, first_body);
    life.time("step 3 (PR #1 fixed, comment edited)", started);

    // 4. PR #2 regresses; a maintainer labels it perf-accept; a further regression fails.
    let started = Instant::now();
    life.project
        .git(&["checkout", "--quiet", "-b", "accepted", &base]);
    life.project.edit(CARDS, DUE_PAGE, N_PLUS_ONE);
    let mut pr2 = PullRequest {
        number: 2,
        head_sha: life
            .project
            .commit_all("query: each due card's word, on purpose"),
        head_ref: "accepted".to_owned(),
        base_ref: "main".to_owned(),
        labels: Vec::new(),
        fork: false,
        author: "dev".to_owned(),
    };
    let runs = life.pull_request("opened", &pr2, "dev", None);
    let run = only(&runs, "perf");
    assert_eq!(
        run.step(PERF_STEP).exit_code,
        Some(1),
        "{}",
        run.describe_with_log(PERF_STEP)
    );
    pr2.labels.push("perf-accept".to_owned());
    let runs = life.pull_request("labeled", &pr2, "maintainer", Some("perf-accept"));
    let run = only(&runs, "perf");
    let described = run.describe_with_log(PERF_STEP);
    assert_eq!(run.step(PERF_STEP).exit_code, Some(0), "{described}");
    let records = artifact_json(&life.runner, run.id, "perf-report", "runs");
    assert_eq!(records.len(), 1, "{described}");
    assert_eq!(
        records[0]["acceptance"]["by"], "maintainer",
        "the record must name the labeller: {:#}",
        records[0]["acceptance"]
    );
    // Another regression pushed under the same label: the acceptance was for the other head.
    life.project.edit(
        CARDS,
        "    for card in &cards {\n",
        "    for card in cards.iter().chain(&cards) {\n",
    );
    pr2.head_sha = life.project.commit_all("query: and again");
    let runs = life.pull_request("synchronize", &pr2, "dev", None);
    let run = only(&runs, "perf");
    assert_eq!(
        run.step(PERF_STEP).exit_code,
        Some(1),
        "an acceptance outlived the head it was given for: {}",
        run.describe_with_log(PERF_STEP)
    );
    life.time("step 4 (PR #2 accepted per head)", started);

    // 5. A fork's PR: its token may not comment; perf-comment.yml posts the artifact. Its next
    //    run fails before measuring, and no stale comment is posted.
    let started = Instant::now();
    let refused_before = life.runner.github.writes_refused();
    life.project
        .git(&["checkout", "--quiet", "-b", "fork-docs", &base]);
    let readme = life.project.root.join("README.md");
    let mut text = std::fs::read_to_string(&readme).unwrap();
    text.push_str("\n<!-- a fork's change -->\n");
    std::fs::write(&readme, text).unwrap();
    let mut pr3 = PullRequest {
        number: 3,
        head_sha: life.project.commit_all("docs: a fork's change"),
        head_ref: "fork-docs".to_owned(),
        base_ref: "main".to_owned(),
        labels: Vec::new(),
        fork: true,
        author: "outsider".to_owned(),
    };
    let runs = life.pull_request("opened", &pr3, "outsider", None);
    let run = only(&runs, "perf");
    assert_eq!(
        run.step(PERF_STEP).exit_code,
        Some(0),
        "{}",
        run.describe_with_log(PERF_STEP)
    );
    assert!(life.runner.github.writes_refused() > refused_before);
    let comment_run = only(&runs, "perf-comment");
    assert_eq!(
        comment_run
            .step("cargo xtask perf publish --from-artifact")
            .exit_code,
        Some(0),
        "{}",
        comment_run.describe_with_log("cargo xtask perf publish --from-artifact")
    );
    let comments = life.runner.github.comments(3);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert_eq!(comments[0].login, BOT);
    let fork_comment = comments[0].body.clone();
    // A change that makes the run fail before it measures anything: a key the harness does
    // not know in its configuration.
    life.project.edit(
        "Cargo.toml",
        "[workspace.metadata.perf]\n",
        "[workspace.metadata.perf]\nnot_a_key = true\n",
    );
    pr3.head_sha = life.project.commit_all("config: a key the harness refuses");
    let runs = life.pull_request("synchronize", &pr3, "outsider", None);
    let run = only(&runs, "perf");
    assert_eq!(
        run.step(SHARD_STEP).exit_code,
        Some(2),
        "{}",
        run.describe_with_log(SHARD_STEP)
    );
    assert_eq!(
        run.job("gate").conclusion,
        "skipped",
        "the gate judged a run whose shard failed: {}",
        run.describe()
    );
    let comments = life.runner.github.comments(3);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert_eq!(
        (comments[0].edits, &comments[0].body),
        (0, &fork_comment),
        "a stale comment was posted for the failed run: {}",
        runs.iter().map(|r| r.describe()).collect::<String>()
    );
    life.time("step 5 (fork PR #3)", started);

    // 6. Two merges to main back to back: both are recorded; a PR on the first says which
    //    record it used (main's tip: the PR is checked out merged into it).
    let started = Instant::now();
    life.project.git(&["checkout", "--quiet", "main"]);
    life.project.git(&[
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        "Merge pull request #1",
        "n-plus-one",
    ]);
    let (first, runs) = life.land_on_main();
    let first_run = only(&runs, "perf-baseline").clone();
    let readme = life.project.root.join("README.md");
    let mut text = std::fs::read_to_string(&readme).unwrap();
    text.push_str("\n<!-- the second merge -->\n");
    std::fs::write(&readme, text).unwrap();
    life.project.commit_all("docs: the second merge");
    let (second, runs) = life.land_on_main();
    let second_run = only(&runs, "perf-baseline");
    let recorded = life.recorded_commits();
    for (commit, run) in [(&first, &first_run), (&second, second_run)] {
        assert!(
            recorded.contains(commit),
            "no record of {commit}: {recorded:?}\n{}",
            run.describe_with_log(BASELINE_STEP)
        );
    }
    life.project
        .git(&["checkout", "--quiet", "-b", "on-first", &first]);
    let pr4 = PullRequest {
        number: 4,
        head_sha: life.project.commit_all("a change based on the first merge"),
        head_ref: "on-first".to_owned(),
        base_ref: "main".to_owned(),
        labels: Vec::new(),
        fork: false,
        author: "dev".to_owned(),
    };
    let runs = life.pull_request("opened", &pr4, "dev", None);
    let run = only(&runs, "perf");
    let described = run.describe_with_log(PERF_STEP);
    assert_eq!(run.step(PERF_STEP).exit_code, Some(0), "{described}");
    // A pull_request run checks out `refs/pull/4/merge`, the PR merged into main's tip: its
    // base is that tip (the second merge), read from its stored record.
    assert_stored_base(&life.runner, run, &second, &described);
    let comments = life.runner.github.comments(4);
    assert!(
        comments[0].body.contains(&second[..10]),
        "the comment names the base: {}",
        comments[0].body
    );
    life.time("step 6 (two merges, a PR on the first)", started);

    let unexpected = life.runner.github.unexpected();
    assert!(
        unexpected.is_empty(),
        "requests the stand-in does not serve: {unexpected:?}"
    );
    eprintln!(
        "lifecycle: cache costs: {:#?}",
        life.runner.stores.cache_costs
    );
    life.time("the lifecycle", life.started);
}

#[test]
fn unit_hashes_are_read_from_the_names_cargo_gives_a_units_files() {
    let hash = "0123456789abcdef";
    for name in [
        "libserde-0123456789abcdef.rlib",
        "libserde-0123456789abcdef.rmeta",
        "serde_json-0123456789abcdef.d",
        "serde-0123456789abcdef",
        "suite-0123456789abcdef",
    ] {
        assert_eq!(unit_hash(name), Some(hash), "{name}");
    }
    for name in ["build-script-build", "xtask", "libfoo-0123.rlib", "output"] {
        assert_eq!(unit_hash(name), None, "{name}");
    }
    let messages = format!(
        "{{\"reason\":\"compiler-artifact\",\"filenames\":[\"/t/debug/deps/libserde-{hash}.rlib\"]}}\n\
         {{\"reason\":\"build-script-executed\",\"out_dir\":\"/t/debug/build/serde-fedcba9876543210/out\"}}\n\
         not json\n"
    );
    assert_eq!(
        units_built(&messages).into_iter().collect::<Vec<_>>(),
        vec![hash.to_owned(), "fedcba9876543210".to_owned()]
    );
}
