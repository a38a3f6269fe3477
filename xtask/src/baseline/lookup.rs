//! Baseline lookup: which commit's record is the base of a run, how it was chosen and what was
//! passed over (decided before any service starts), and the target branch's stored records
//! along first parents (`Lineage`), read once for `perf`'s noise bands and history plots and
//! for `perf history`. Reads git and the store; measures nothing.

use std::path::Path;

use super::git::{BaseChoice, BaselineError, GitRepo, HeadState, stored_record};
use super::store::{BaselineStore, StoreError};
use crate::compare;
use crate::config::PerfMetadata;
use crate::record::RunRecord;
use crate::render::short_sha;

/// What the base side of the comparison will be.
#[derive(Debug)]
pub enum BasePlan {
    /// Nothing to compare with, and why.
    None { reason: String },
    /// A stored record of the base (or of its nearest first-parent ancestor with one).
    Stored {
        /// The commit whose record is used, and how it was chosen.
        choice: BaseChoice,
        /// What is measured instead if the record turns out not comparable.
        fallback: BaseChoice,
        /// Where the record is (`<branch>:<path>` or a file).
        source: String,
        record: Box<RunRecord>,
        /// What was looked at and not used, in words.
        passed_over: Vec<String>,
    },
    /// No usable record: the base is measured in a worktree in this run.
    Measure {
        choice: BaseChoice,
        passed_over: Vec<String>,
    },
}

impl BasePlan {
    /// One line for the run's progress: the base, how it was chosen, where its record is.
    pub fn describe(&self) -> String {
        match self {
            Self::None { reason } => format!("no baseline ({reason})"),
            Self::Stored { choice, source, .. } => format!(
                "base {} ({}; stored record {source})",
                short_sha(&choice.commit),
                choice.how_chosen,
            ),
            Self::Measure {
                choice,
                passed_over,
            } => format!(
                "base {} ({}; {}: it will be measured in a worktree)",
                short_sha(&choice.commit),
                choice.how_chosen,
                passed_over.join("; ")
            ),
        }
    }
}

/// What the run asked of its base (`--base`, `--paired`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BaseRequest<'a> {
    /// `--base`: a revision, `none`, or absent for the default.
    pub base: Option<&'a str>,
    /// `--paired`: the base must be measured in this run.
    pub paired: bool,
}

/// Chooses the base of a run of `head`: `--base` when given (that commit only), else the
/// default base (`GitRepo::default_base`) or, when it has no record, its nearest first-parent
/// ancestor with one within `max_ancestor_distance`; a record is looked for on the baseline
/// branch (local, then origin's) and in `runs_dir`. `--paired` always measures.
pub fn choose_base(
    repo: &GitRepo,
    head: &HeadState,
    request: BaseRequest<'_>,
    metadata: &PerfMetadata,
    machine_class: &str,
    runs_dir: &Path,
) -> anyhow::Result<BasePlan> {
    let Some(choice) = base_commit(repo, head, request, &metadata.target_branch)? else {
        let reason = match request.base {
            Some(_) => "--base none",
            None => "HEAD has no parent and no target branch to compare with",
        };
        return Ok(BasePlan::None {
            reason: reason.to_owned(),
        });
    };
    if request.paired {
        // Wall time is judged only when both sides are timed in this job: the base is
        // measured here, whatever the store holds.
        return Ok(BasePlan::Measure {
            choice,
            passed_over: vec![
                "--paired: the base is measured in this run to be timed side by side, not taken from a stored record".to_owned(),
            ],
        });
    }
    // An explicit --base is that commit only; the default base may fall back to the nearest
    // first-parent ancestor with a record, so that a PR need not measure its base.
    let distance = if request.base.is_some() {
        0
    } else {
        metadata.max_ancestor_distance
    };
    let store = BaselineStore::open(repo.root(), &metadata.baseline_branch)?;
    let nearest = nearest_stored(repo, &store, &choice, distance, machine_class, runs_dir)?;
    if let Some(stored) = nearest {
        return Ok(stored);
    }
    let searched = if distance == 0 {
        String::new()
    } else {
        format!(" or its {distance} nearest first-parent ancestors")
    };
    Ok(BasePlan::Measure {
        passed_over: vec![format!(
            "no stored record of {}{searched} for machine class {machine_class} (on {} or in {})",
            short_sha(&choice.commit),
            store.branch(),
            runs_dir.display()
        )],
        choice,
    })
}

/// The stored record of `choice` or, within `distance`, of its nearest first-parent ancestor
/// with one (on the baseline branch, else in `runs_dir`), as the plan that uses it.
fn nearest_stored(
    repo: &GitRepo,
    store: &BaselineStore,
    choice: &BaseChoice,
    distance: u32,
    machine_class: &str,
    runs_dir: &Path,
) -> anyhow::Result<Option<BasePlan>> {
    let candidates = std::iter::once(choice.commit.clone())
        .chain(repo.first_parent_ancestors(&choice.commit, distance)?)
        .enumerate();
    for (steps_back, commit) in candidates {
        let found = match store.locate(machine_class, &commit)? {
            Some(located) => Some(located),
            None => stored_record(runs_dir, &commit)?
                .map(|(path, record)| (path.display().to_string(), record)),
        };
        let Some((source, record)) = found else {
            continue;
        };
        let mut passed_over = Vec::new();
        let chosen = if steps_back == 0 {
            choice.clone()
        } else {
            passed_over.push(format!(
                "no stored record of {} for machine class {machine_class}",
                short_sha(&choice.commit)
            ));
            BaseChoice {
                commit,
                how_chosen: format!(
                    "{}; the nearest first-parent ancestor with a stored record, {steps_back} commit{} back",
                    choice.how_chosen,
                    if steps_back == 1 { "" } else { "s" }
                ),
            }
        };
        return Ok(Some(BasePlan::Stored {
            choice: chosen,
            fallback: choice.clone(),
            source,
            record: Box::new(record),
            passed_over,
        }));
    }
    Ok(None)
}

/// The base commit the request names, or the default one; `None` for nothing to compare with.
fn base_commit(
    repo: &GitRepo,
    head: &HeadState,
    request: BaseRequest<'_>,
    target_branch: &str,
) -> anyhow::Result<Option<BaseChoice>> {
    match request.base {
        Some("none") if request.paired => anyhow::bail!(
            "--paired times base and head side by side, but --base none asks for no base.\n  fix: drop --base none, or give a revision to compare with (--base <rev>)"
        ),
        Some("none") => Ok(None),
        Some(rev) => Ok(Some(BaseChoice {
            commit: repo.resolve(rev).map_err(|error| {
                anyhow::Error::new(error).context(format!(
                    "--base {rev} (`--base none` compares with nothing)"
                ))
            })?,
            how_chosen: format!("--base {rev}"),
        })),
        None => match repo.default_base(head, target_branch)? {
            None if request.paired => anyhow::bail!(
                "--paired needs a base to time side by side, but HEAD has no parent and there is no target branch to compare with.\n  fix: give one with --base <rev>, or drop --paired"
            ),
            choice => Ok(choice),
        },
    }
}

/// The stored records of one machine class along the first-parent path ending at a commit,
/// oldest first.
#[derive(Debug, Default)]
pub struct Lineage {
    /// The commits read, oldest first (the tip last).
    pub commits: Vec<String>,
    /// The records found, oldest first.
    pub records: Vec<RunRecord>,
    /// Records that could not be read, and those `keep_comparable_with` dropped, with why.
    pub left_out: Vec<String>,
}

impl Lineage {
    /// Reads the records of `machine_class` of `tip` and its first parents, `depth` commits in
    /// all. A record that cannot be read is left out and said so: a band or a history then
    /// rests on fewer records.
    pub fn read(
        repo: &GitRepo,
        store: &BaselineStore,
        tip: &str,
        depth: u32,
        machine_class: &str,
    ) -> Result<Self, BaselineError> {
        let mut commits = repo.first_parent_ancestors(tip, depth.saturating_sub(1))?;
        commits.reverse();
        commits.push(tip.to_owned());
        let mut lineage = Self::default();
        for commit in &commits {
            match store.get(machine_class, commit) {
                Ok(Some(record)) => lineage.records.push(record),
                Ok(None) => {}
                Err(error) => lineage.left_out.push(unreadable(commit, &error)),
            }
        }
        lineage.commits = commits;
        Ok(lineage)
    }

    /// Keeps only the records measured like `reference` (same machine class, toolchain,
    /// servers, configuration), named `reference_name` in what is left out: a new toolchain or
    /// server version shifts counts without any commit being to blame.
    pub fn keep_comparable_with(
        &mut self,
        reference: &crate::record::Environment,
        reference_name: &str,
    ) {
        let left_out = &mut self.left_out;
        self.records.retain(|record| {
            let mismatches = compare::fingerprint_mismatches(&record.environment, reference);
            if !mismatches.is_empty() {
                left_out.push(format!(
                    "{}: measured differently from {reference_name} ({})",
                    short_sha(&record.commit),
                    mismatches.join("; ")
                ));
            }
            mismatches.is_empty()
        });
    }

    /// Every metric's values in the records, oldest first: what noise bands learn from.
    pub fn values(&self) -> compare::History {
        let mut history = compare::History::new();
        for record in &self.records {
            for metric in &record.metrics {
                history
                    .entry(metric.name.clone())
                    .or_default()
                    .push(metric.value);
            }
        }
        history
    }
}

fn unreadable(commit: &str, error: &StoreError) -> String {
    format!("{}: {error}", short_sha(commit))
}

#[cfg(test)]
mod tests {
    //! Choosing the base on real repositories in temp dirs (the `git` program makes the
    //! history; the store writes the baseline branch).

    use std::path::Path;
    use std::process::Command;

    use clap::Parser;

    use super::*;
    use crate::fingerprint;
    use crate::flags::{Command as XtaskCommand, Xtask};
    use crate::record::TestRecord;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn commit(dir: &Path, n: u32) -> String {
        std::fs::write(dir.join("file.txt"), format!("change {n}\n")).unwrap();
        git(dir, &["add", "file.txt"]);
        git(dir, &["commit", "--quiet", "-m", &format!("change {n}")]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// main: c1 - c2 - c3 - c4; HEAD: a feature branch with one commit on c4.
    fn history(dir: &Path) -> Vec<String> {
        git(dir, &["init", "--quiet", "--initial-branch=main"]);
        let commits: Vec<String> = (1..=4).map(|n| commit(dir, n)).collect();
        git(dir, &["checkout", "--quiet", "-b", "feature"]);
        commit(dir, 5);
        commits
    }

    fn record_of(commit: &str, machine_class: &str) -> RunRecord {
        TestRecord::new(commit).machine_class(machine_class).build()
    }

    /// The base `cargo xtask perf <args>` would choose in `dir`.
    fn plan(dir: &Path, metadata: &PerfMetadata, args: &[&str]) -> BasePlan {
        choose(dir, metadata, args).unwrap()
    }

    fn choose(dir: &Path, metadata: &PerfMetadata, args: &[&str]) -> anyhow::Result<BasePlan> {
        let XtaskCommand::Perf(flags) =
            Xtask::parse_from([&["cargo xtask", "perf"], args].concat()).command
        else {
            panic!("`perf` parses as the perf command");
        };
        let repo = GitRepo::open(dir).unwrap();
        let head = repo.head().unwrap();
        let request = BaseRequest {
            base: flags.base.as_deref(),
            paired: flags.paired,
        };
        let machine_class = fingerprint::machine_class(metadata);
        choose_base(
            &repo,
            &head,
            request,
            metadata,
            &machine_class,
            &dir.join("target/perf/runs"),
        )
    }

    #[test]
    fn the_nearest_first_parent_ancestor_with_a_stored_record_is_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata::default();
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        // Records of c1 and c2 (and of c4 for another machine class): c2 is nearest.
        store.put(&record_of(&commits[0], &class)).unwrap();
        store.put(&record_of(&commits[1], &class)).unwrap();
        store.put(&record_of(&commits[3], "other-class")).unwrap();

        match plan(dir.path(), &metadata, &[]) {
            BasePlan::Stored {
                choice,
                fallback,
                source,
                passed_over,
                ..
            } => {
                assert_eq!(choice.commit, commits[1]);
                assert!(choice.how_chosen.contains("2 commits back"), "{choice:?}");
                assert_eq!(
                    fallback.commit, commits[3],
                    "the merge-base is measured instead"
                );
                assert_eq!(
                    source,
                    format!("perf-baselines:{class}/{}.json", commits[1])
                );
                assert_eq!(passed_over.len(), 1, "{passed_over:?}");
            }
            _ => panic!("expected a stored record"),
        }
    }

    /// Issue 13, defect 1: `actions/checkout` with `fetch-depth: 0` leaves the baseline
    /// branch as `refs/remotes/origin/perf-baselines` only; a PR must still find its records.
    #[test]
    fn a_record_only_on_origins_remote_tracking_branch_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata::default();
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        store.put(&record_of(&commits[3], &class)).unwrap();
        let tip = git(dir.path(), &["rev-parse", "refs/heads/perf-baselines"]);
        git(
            dir.path(),
            &["update-ref", "refs/remotes/origin/perf-baselines", &tip],
        );
        git(
            dir.path(),
            &["update-ref", "-d", "refs/heads/perf-baselines"],
        );

        match plan(dir.path(), &metadata, &[]) {
            BasePlan::Stored { choice, source, .. } => {
                assert_eq!(choice.commit, commits[3]);
                assert_eq!(
                    source,
                    format!("origin/perf-baselines:{class}/{}.json", commits[3])
                );
            }
            _ => panic!("the remote-tracking branch's record must be used"),
        }
    }

    #[test]
    fn the_merge_base_itself_is_measured_when_no_record_is_near_enough() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata {
            max_ancestor_distance: 1,
            ..PerfMetadata::default()
        };
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        store.put(&record_of(&commits[1], &class)).unwrap();

        match plan(dir.path(), &metadata, &[]) {
            BasePlan::Measure {
                choice,
                passed_over,
            } => {
                assert_eq!(choice.commit, commits[3]);
                assert!(
                    passed_over[0].contains("or its 1 nearest first-parent ancestors"),
                    "{passed_over:?}"
                );
            }
            _ => panic!("expected the merge-base to be measured"),
        }
    }

    /// Issue 13, defect 10: a misspelled target branch used to fall back to HEAD's first
    /// parent, the wrong base for a PR of several commits.
    #[test]
    fn a_target_branch_that_does_not_exist_is_an_error_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        history(dir.path());
        let metadata = PerfMetadata {
            target_branch: "mian".to_owned(),
            ..PerfMetadata::default()
        };
        let Err(error) = choose(dir.path(), &metadata, &[]) else {
            panic!("a missing target branch must not choose a base");
        };
        let message = format!("{error:#}");
        assert!(message.contains("\"mian\""), "{message}");
        assert!(
            message.contains("fix: correct `target_branch`"),
            "{message}"
        );
    }

    #[test]
    fn an_explicit_base_is_that_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let commits = history(dir.path());
        let metadata = PerfMetadata::default();
        let class = fingerprint::machine_class(&metadata);
        let store = BaselineStore::open(dir.path(), &metadata.baseline_branch).unwrap();
        store.put(&record_of(&commits[1], &class)).unwrap();

        match plan(dir.path(), &metadata, &["--base", &commits[2]]) {
            BasePlan::Measure { choice, .. } => assert_eq!(choice.commit, commits[2]),
            _ => panic!("an explicit base must not fall back to an ancestor"),
        }
        match plan(dir.path(), &metadata, &["--base", &commits[1]]) {
            BasePlan::Stored { choice, .. } => assert_eq!(choice.commit, commits[1]),
            _ => panic!("the explicit base's stored record is used"),
        }
    }
}
