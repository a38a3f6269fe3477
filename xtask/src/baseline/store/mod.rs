//! The baseline store: run records of the target branch, kept in a branch of the project's own
//! repository (`perf-baselines` by default) as one file per machine class and commit,
//! `<machine_class>/<sha>.json`, and shared with other machines by fetch and push.
//!
//! It must never touch the work tree, the index or HEAD: a change is blobs, trees and one commit
//! written straight into the object database, published by one compare-and-swap update of the
//! branch. It never stores a dirty work tree's record, and never overwrites a branch, local or
//! remote, that moved while it was working: it merges what moved and tries again instead.
//!
//! Split by concern: this module reads and writes the local branch (put, get, list, prune, and
//! the compare-and-swap every change goes through); `sync` fetches and pushes (remotes, the
//! `git` program, the three-way merge of records); `paths` names records on the branch.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use chrono::{DateTime, Utc};
use git2::{
    Branch, ErrorCode, ObjectType, Oid, Repository, Signature, TreeWalkMode, TreeWalkResult,
};

use super::git::{BaselineError, discover};
use crate::record::{self, RecordError, RunRecord};

mod paths;
mod sync;

use paths::parse_record_path;
pub use paths::record_path;

/// The branch the store uses unless told otherwise.
pub const DEFAULT_BRANCH: &str = crate::config::DEFAULT_BASELINE_BRANCH;

/// How many times `push` tries before it gives up on a remote that keeps moving.
pub const MAX_PUSH_ATTEMPTS: usize = 5;

/// How many times a local change is recomputed when another process moved the branch first.
const MAX_LOCAL_ATTEMPTS: usize = 5;

const FILE_MODE: i32 = 0o100644;
const DIR_MODE: i32 = 0o040000;

/// Errors of the baseline store. Every message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    NotARepository(#[from] BaselineError),
    #[error(
        "{branch:?} is not a valid name for the baseline branch.\n  fix: pass a name `git check-ref-format --branch` accepts, such as {DEFAULT_BRANCH:?}"
    )]
    InvalidBranch { branch: String },
    #[error(
        "machine class {class:?} cannot name a directory of the baseline branch: {reason}.\n  fix: set `machine_class` in [workspace.metadata.perf] to at most 100 letters, digits, '.', '_' and '-' that do not start with '.' or '-', or to \"auto\""
    )]
    InvalidMachineClass { class: String, reason: &'static str },
    #[error(
        "{commit:?} is not a full commit sha (40 or 64 lowercase hex digits).\n  fix: pass the full sha, as `git rev-parse <rev>` prints it"
    )]
    InvalidCommit { commit: String },
    #[error(
        "the record of {commit} was measured in a dirty work tree: a dirty work tree's record is never stored as a baseline.\n  fix: commit the change first, then measure again"
    )]
    DirtyRecord { commit: String },
    #[error(
        "the record of {commit} is shard {shard} of a sharded run: one part of the run is never stored as a baseline.\n  fix: merge every shard's record first (`cargo xtask perf merge <record>...`) and store the merged record"
    )]
    ShardRecord { commit: String, shard: String },
    #[error(
        "the baseline branch {branch} is checked out in {work_tree}; the store never touches a work tree, so it will not move a branch one has checked out.\n  fix: check out another branch there (e.g. `git switch main`)"
    )]
    BranchCheckedOut { branch: String, work_tree: PathBuf },
    #[error(
        "{location} is not a valid run record ({detail}); the branch was left as it is.\n  fix: re-record it (measure that commit on that machine class again: storing a record replaces the file), or remove it with `prune` or a commit on the branch that deletes it"
    )]
    CorruptRecord { location: String, detail: String },
    #[error(
        "{location} has schema_version {found}, newer than the {supported} this harness reads; the branch was left as it is.\n  fix: update this checkout (a newer harness wrote the record)"
    )]
    NewerRecord {
        location: String,
        found: u64,
        supported: u32,
    },
    #[error(
        "the branch {branch} moved {attempts} times while a change was being written to it (other processes are writing to it; last: {reason}); nothing was changed.\n  fix: run again"
    )]
    ConcurrentWrite {
        branch: String,
        attempts: usize,
        reason: String,
    },
    #[error(
        "pushing {branch} to {remote} was rejected {attempts} times (last: {reason}); the remote branch keeps what it had.\n  fix: if other runs are pushing at the same time, run again; otherwise find out what the remote refuses for {branch} (a hook, branch protection)"
    )]
    PushRejected {
        remote: String,
        branch: String,
        attempts: usize,
        reason: String,
    },
    #[error(
        "cannot use remote {remote:?}: {detail}.\n  fix: pass a remote `git remote -v` lists, or a path or URL of the repository; this build of git2 speaks local paths, file:// and git:// only"
    )]
    Remote { remote: String, detail: String },
    #[error(
        "the baseline branch holds a path that is not UTF-8 ({path}).\n  fix: remove that file from the branch with git"
    )]
    NonUtf8Path { path: String },
    #[error(
        "prune must keep at least one record per machine class.\n  fix: pass 1 or more (delete the branch to drop every record)"
    )]
    KeepNothing,
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// One stored record as `list` sees it: where it is, without reading it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoredEntry {
    pub machine_class: String,
    pub commit: String,
    /// Size of the record file, in bytes.
    pub size: u64,
}

impl StoredEntry {
    /// The path of the record on the branch: `<machine_class>/<sha>.json`.
    pub fn path(&self) -> String {
        format!("{}/{}.json", self.machine_class, self.commit)
    }
}

/// What `put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new file: the branch's new commit is `store_commit`.
    Stored { path: String, store_commit: String },
    /// The path held a different record of the same commit and machine class (a
    /// re-measurement); this one replaced it.
    Replaced { path: String, store_commit: String },
    /// The path already held these exact bytes: no new commit.
    AlreadyStored { path: String },
}

/// What `fetch` did to the local branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The remote has no baseline branch.
    NothingToFetch,
    /// The local branch already holds everything the remote's does.
    UpToDate,
    /// The local branch was behind (or absent) and is now the remote's commit.
    FastForwarded { store_commit: String },
    /// Both sides had commits of their own: a merge commit with both as parents holds both
    /// sides' files. `replaced_by_remote` lists the paths both sides changed differently, where
    /// the remote's file won.
    Merged {
        store_commit: String,
        replaced_by_remote: Vec<String>,
    },
}

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    /// The remote branch is now `store_commit`.
    Pushed { store_commit: String },
    /// The remote branch already was the local one.
    AlreadyUpToDate,
    /// There is no local baseline branch.
    NothingToPush,
}

/// What `push` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub result: PushResult,
    /// Push attempts made: 1 unless another clone pushed in between, in which case its records
    /// were fetched and merged before each further attempt.
    pub attempts: usize,
    /// Paths where those merges took the remote's file over the local one.
    pub replaced_by_remote: Vec<String>,
}

/// What `prune` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Records older than the newest `keep` of their machine class.
    pub removed: Vec<StoredEntry>,
    /// Records without a readable `created_at` (corrupt: no harness can use them).
    pub removed_unreadable: Vec<StoredEntry>,
    /// Records left on the branch.
    pub kept: usize,
    /// The branch's new commit; `None` when there was nothing to remove.
    pub store_commit: Option<String>,
}

/// Files of a commit of the branch: path (`dir/name`) to blob.
type Files = BTreeMap<String, Oid>;

/// The baseline branch of one repository.
pub struct BaselineStore {
    repo: Repository,
    branch: String,
    refname: String,
}

/// One step of a change to a branch, computed from its current commit.
enum Step<T> {
    /// Nothing to write.
    Keep(T),
    /// Move the branch to `to` (a commit whose first parent is the current one, or a commit that
    /// contains it).
    Move { to: Oid, reflog: String, outcome: T },
}

/// Why one attempt failed: lost a race (try again) or anything else (give up).
enum Attempt {
    LostRace(String),
    Failed(StoreError),
}

impl<E: Into<StoreError>> From<E> for Attempt {
    fn from(error: E) -> Self {
        Self::Failed(error.into())
    }
}

impl BaselineStore {
    /// The store in `branch` of the repository `repo_dir` is in. Reads nothing yet: the branch
    /// may not exist.
    pub fn open(repo_dir: &Path, branch: &str) -> Result<Self, StoreError> {
        if !Branch::name_is_valid(branch).unwrap_or(false) {
            return Err(StoreError::InvalidBranch {
                branch: branch.to_owned(),
            });
        }
        let repo = discover(repo_dir)?;
        Ok(Self {
            repo,
            branch: branch.to_owned(),
            refname: format!("refs/heads/{branch}"),
        })
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Stores a clean commit's record at `<machine_class>/<sha>.json` in one new commit on the
    /// branch (created, without a parent, if absent). A different record at that path is
    /// replaced (a re-measurement); the same bytes make no commit.
    pub fn put(&self, record: &RunRecord) -> Result<PutOutcome, StoreError> {
        if record.dirty {
            return Err(StoreError::DirtyRecord {
                commit: record.commit.clone(),
            });
        }
        if let Some(shard) = &record.shard {
            return Err(StoreError::ShardRecord {
                commit: record.commit.clone(),
                shard: format!("{}/{}", shard.index, shard.count),
            });
        }
        let machine_class = &record.environment.machine_class;
        let path = record_path(machine_class, &record.commit)?;
        let mut json = serde_json::to_vec_pretty(record).expect("a record serializes");
        json.push(b'\n');
        let blob = self.repo.blob(&json)?;
        // Without a local branch, the record goes on top of origin's (as `actions/checkout`
        // leaves it: a remote-tracking branch only), so that the push is a fast-forward.
        let tracking = self.tracking_tip()?;
        self.update_branch(|tip| {
            let parent = tip.or(tracking);
            let mut files = self.files(parent)?;
            let replaced = match files.insert(path.clone(), blob) {
                Some(previous) if previous == blob => {
                    return Ok(Step::Keep(PutOutcome::AlreadyStored { path: path.clone() }));
                }
                previous => previous.is_some(),
            };
            let verb = if replaced { "replace" } else { "store" };
            let summary = format!(
                "perf: {verb} the {machine_class} record of {}",
                record.commit
            );
            let body = if replaced {
                "\n\nA re-measurement: it replaces the record stored before."
            } else {
                ""
            };
            let message = format!("{summary}\n\n{path}{body}\n");
            let store_commit = self.commit(&files, parent.as_slice(), &message)?;
            let (path, store_commit_hex) = (path.clone(), store_commit.to_string());
            let outcome = if replaced {
                PutOutcome::Replaced {
                    path,
                    store_commit: store_commit_hex,
                }
            } else {
                PutOutcome::Stored {
                    path,
                    store_commit: store_commit_hex,
                }
            };
            Ok(Step::Move {
                to: store_commit,
                reflog: summary,
                outcome,
            })
        })
    }

    /// The stored record of `commit` measured on `machine_class`, if there is one. A file that
    /// is not a valid record of that commit and class is an error naming `<branch>:<path>`.
    pub fn get(&self, machine_class: &str, commit: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self
            .locate(machine_class, commit)?
            .map(|(_, record)| record))
    }

    /// [`get`](Self::get), with where the record was read: `<branch>:<path>`, or
    /// `origin/<branch>:<path>` when only the remote-tracking branch has it (a CI checkout
    /// such as `actions/checkout` with `fetch-depth: 0` fetches every branch of `origin` as a
    /// remote-tracking branch and makes no local one).
    pub fn locate(
        &self,
        machine_class: &str,
        commit: &str,
    ) -> Result<Option<(String, RunRecord)>, StoreError> {
        let path = record_path(machine_class, commit)?;
        for (name, tip) in self.read_tips()? {
            let tree = self.repo.find_commit(tip)?.tree()?;
            let entry = match tree.get_path(Path::new(&path)) {
                Ok(entry) => entry,
                Err(e) if e.code() == ErrorCode::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let location = format!("{name}:{path}");
            let record = self.read_record(&entry, &location, machine_class, commit)?;
            return Ok(Some((location, record)));
        }
        Ok(None)
    }

    /// The branches reads look in, in order: the local branch, then `origin`'s
    /// remote-tracking branch (each only if it exists).
    fn read_tips(&self) -> Result<Vec<(String, Oid)>, StoreError> {
        let mut tips = Vec::new();
        if let Some(local) = self.tip()? {
            tips.push((self.branch.clone(), local));
        }
        if let Some(oid) = self.tracking_tip()?
            && tips.iter().all(|(_, tip)| *tip != oid)
        {
            tips.push((self.tracking_name(), oid));
        }
        Ok(tips)
    }

    /// The commit of `origin`'s remote-tracking branch, `None` when there is none.
    fn tracking_tip(&self) -> Result<Option<Oid>, StoreError> {
        match self
            .repo
            .find_reference(&format!("refs/remotes/{}", self.tracking_name()))
        {
            Ok(reference) => Ok(Some(reference.peel_to_commit()?.id())),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `origin/<branch>`: the remote-tracking branch reads fall back to.
    fn tracking_name(&self) -> String {
        format!("origin/{}", self.branch)
    }

    /// Reads and checks the record at `entry` (named `location` in errors).
    fn read_record(
        &self,
        entry: &git2::TreeEntry<'_>,
        location: &str,
        machine_class: &str,
        commit: &str,
    ) -> Result<RunRecord, StoreError> {
        let location = location.to_owned();
        let corrupt = |detail: String| StoreError::CorruptRecord {
            location: location.clone(),
            detail,
        };
        let blob = entry
            .to_object(&self.repo)?
            .into_blob()
            .map_err(|_| corrupt("a directory, not a file".to_owned()))?;
        let text =
            std::str::from_utf8(blob.content()).map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
        let record =
            record::parse_record(text, Path::new(&location)).map_err(|error| match error {
                RecordError::NewerVersion {
                    found, supported, ..
                } => StoreError::NewerRecord {
                    location: location.clone(),
                    found,
                    supported,
                },
                RecordError::Corrupt { detail, .. } => corrupt(detail),
                other => corrupt(other.to_string()),
            })?;
        if record.commit != commit || record.environment.machine_class != machine_class {
            return Err(corrupt(format!(
                "it is the {} record of {}, not the one its path names",
                record.environment.machine_class, record.commit
            )));
        }
        if record.dirty {
            return Err(corrupt("it is a dirty work tree's record".to_owned()));
        }
        if record.shard.is_some() {
            return Err(corrupt("it is one shard's part of a run".to_owned()));
        }
        Ok(record)
    }

    /// Every stored record's machine class, commit and size, sorted; reads no record. Files
    /// that do not follow the layout (`<machine_class>/<sha>.json`) are not listed.
    pub fn list(&self) -> Result<Vec<StoredEntry>, StoreError> {
        // The local branch's files, and those only `origin`'s remote-tracking branch has.
        let mut files = Files::new();
        for (_, tip) in self.read_tips()? {
            for (path, blob) in self.files(Some(tip))? {
                files.entry(path).or_insert(blob);
            }
        }
        let mut entries = self.entries(&files)?;
        entries.sort();
        Ok(entries)
    }

    /// Keeps the `keep` newest records (by `created_at`) of each machine class and removes the
    /// rest, and every record whose `created_at` cannot be read, in one commit.
    pub fn prune(&self, keep: usize) -> Result<PruneOutcome, StoreError> {
        if keep == 0 {
            return Err(StoreError::KeepNothing);
        }
        self.update_branch(|tip| {
            let mut files = self.files(tip)?;
            // Each class's records with their `created_at` (`None`: unreadable).
            type Dated = (Option<DateTime<Utc>>, StoredEntry);
            let mut by_class: BTreeMap<String, Vec<Dated>> = BTreeMap::new();
            for entry in self.entries(&files)? {
                let created_at = self.created_at(files[&entry.path()]);
                by_class
                    .entry(entry.machine_class.clone())
                    .or_default()
                    .push((created_at, entry));
            }
            let (mut removed, mut removed_unreadable, mut kept) = (Vec::new(), Vec::new(), 0);
            for records in by_class.into_values() {
                let (mut readable, unreadable): (Vec<_>, Vec<_>) = records
                    .into_iter()
                    .partition(|(created, _)| created.is_some());
                // Newest first; the commit breaks ties so the choice does not depend on order.
                readable.sort_by(|(a, a_entry), (b, b_entry)| {
                    b.cmp(a).then_with(|| b_entry.commit.cmp(&a_entry.commit))
                });
                kept += readable.len().min(keep);
                removed.extend(readable.into_iter().skip(keep).map(|(_, entry)| entry));
                removed_unreadable.extend(unreadable.into_iter().map(|(_, entry)| entry));
            }
            removed.sort();
            removed_unreadable.sort();
            let mut outcome = PruneOutcome {
                removed,
                removed_unreadable,
                kept,
                store_commit: None,
            };
            if outcome.removed.is_empty() && outcome.removed_unreadable.is_empty() {
                return Ok(Step::Keep(outcome));
            }
            let gone: Vec<String> = outcome
                .removed
                .iter()
                .chain(&outcome.removed_unreadable)
                .map(StoredEntry::path)
                .collect();
            for path in &gone {
                files.remove(path);
            }
            let summary = format!("perf: prune to the newest {keep} records of each machine class");
            let message = format!("{summary}\n\nRemoved:\n{}\n", gone.join("\n"));
            let store_commit = self.commit(&files, tip.as_slice(), &message)?;
            outcome.store_commit = Some(store_commit.to_string());
            Ok(Step::Move {
                to: store_commit,
                reflog: summary,
                outcome,
            })
        })
    }

    /// The branch's commit, `None` when it does not exist.
    fn tip(&self) -> Result<Option<Oid>, StoreError> {
        match self.repo.find_reference(&self.refname) {
            Ok(reference) => Ok(Some(reference.peel_to_commit()?.id())),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Computes a change from the branch's current commit and moves the branch to it only if
    /// the branch is still at that commit (compare-and-swap, under git's ref lock). When another
    /// writer moved it in between, the change is computed again from the new commit.
    fn update_branch<T>(
        &self,
        mut step: impl FnMut(Option<Oid>) -> Result<Step<T>, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempts = 0;
        let result = (|| -> Result<T, Attempt> {
            attempts += 1;
            if let Some(work_tree) = work_tree_with_branch_checked_out(&self.repo, &self.refname)? {
                return Err(Attempt::Failed(StoreError::BranchCheckedOut {
                    branch: self.branch.clone(),
                    work_tree,
                }));
            }
            let tip = self.tip()?;
            let (to, reflog, outcome) = match step(tip)? {
                Step::Keep(outcome) => return Ok(outcome),
                Step::Move {
                    to,
                    reflog,
                    outcome,
                } => (to, reflog, outcome),
            };
            move_ref(&self.repo, &self.refname, tip, to, &reflog)?;
            Ok(outcome)
        })
        .retry(backoff(Duration::from_millis(5), MAX_LOCAL_ATTEMPTS))
        .when(|e| matches!(e, Attempt::LostRace(_)))
        .call();
        match result {
            Ok(outcome) => Ok(outcome),
            Err(Attempt::LostRace(reason)) => Err(StoreError::ConcurrentWrite {
                branch: self.branch.clone(),
                attempts,
                reason,
            }),
            Err(Attempt::Failed(error)) => Err(error),
        }
    }

    /// Every file of `commit` (none when `None`), by path.
    fn files(&self, commit: Option<Oid>) -> Result<Files, StoreError> {
        let mut files = Files::new();
        let Some(commit) = commit else {
            return Ok(files);
        };
        let tree = self.repo.find_commit(commit)?.tree()?;
        let mut non_utf8 = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                match entry.name() {
                    Ok(name) => {
                        files.insert(format!("{dir}{name}"), entry.id());
                    }
                    Err(_) => {
                        non_utf8 = Some(format!(
                            "{dir}{}",
                            String::from_utf8_lossy(entry.name_bytes())
                        ));
                        return TreeWalkResult::Abort;
                    }
                }
            }
            TreeWalkResult::Ok
        })
        .or_else(|e| if non_utf8.is_some() { Ok(()) } else { Err(e) })?;
        match non_utf8 {
            Some(path) => Err(StoreError::NonUtf8Path { path }),
            None => Ok(files),
        }
    }

    /// The records among `files`, with their sizes (read from object headers, not contents).
    fn entries(&self, files: &Files) -> Result<Vec<StoredEntry>, StoreError> {
        let odb = self.repo.odb()?;
        let mut entries = Vec::new();
        for (path, blob) in files {
            let Some((machine_class, commit)) = parse_record_path(path) else {
                continue;
            };
            let (size, _) = odb.read_header(*blob)?;
            entries.push(StoredEntry {
                machine_class: machine_class.to_owned(),
                commit: commit.to_owned(),
                size: size as u64,
            });
        }
        Ok(entries)
    }

    /// A record's `created_at`, read without the rest of its shape (so a newer schema version
    /// still has one); `None` when there is no readable one.
    fn created_at(&self, blob: Oid) -> Option<DateTime<Utc>> {
        #[derive(serde::Deserialize)]
        struct CreatedAt {
            created_at: DateTime<Utc>,
        }
        let blob = self.repo.find_blob(blob).ok()?;
        serde_json::from_slice::<CreatedAt>(blob.content())
            .ok()
            .map(|r| r.created_at)
    }

    /// Writes `files` as a tree and a commit of it with `parents`. Moves no ref.
    fn commit(&self, files: &Files, parents: &[Oid], message: &str) -> Result<Oid, StoreError> {
        let tree = self.repo.find_tree(write_tree(&self.repo, files)?)?;
        let parents = parents
            .iter()
            .map(|parent| self.repo.find_commit(*parent))
            .collect::<Result<Vec<_>, _>>()?;
        let parents: Vec<_> = parents.iter().collect();
        // CI machines often have no git identity configured; the store's commits need one.
        let signature = self
            .repo
            .signature()
            .or_else(|_| Signature::now("xtask perf", "perf@xtask.invalid"))?;
        Ok(self
            .repo
            .commit(None, &signature, &signature, message, &tree, &parents)?)
    }
}

/// Moves `refname` in `repo` from `expected` (absent when `None`) to `to`, failing with
/// `Attempt::LostRace` when it no longer is `expected`. The old value is compared under the
/// ref's lock. Creation too is a compare-and-swap, against the zero id: libgit2's non-forced
/// `reference()` checks that the ref is absent before it takes the lock, so two writers creating
/// it at once can both succeed and the later one silently replaces the other's commit.
fn move_ref(
    repo: &Repository,
    refname: &str,
    expected: Option<Oid>,
    to: Oid,
    reflog: &str,
) -> Result<(), Attempt> {
    // git2 is built without `unstable-sha256`: every repository it opens uses SHA-1 ids.
    let expected = expected.unwrap_or(Oid::ZERO_SHA1);
    match repo.reference_matching(refname, to, true, expected, reflog) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
            ) =>
        {
            Err(Attempt::LostRace(format!("{refname}: {}", e.message())))
        }
        Err(e) => Err(e.into()),
    }
}

/// The work tree (of `repo` or one of its linked worktrees) whose HEAD is `refname`.
fn work_tree_with_branch_checked_out(
    repo: &Repository,
    refname: &str,
) -> Result<Option<PathBuf>, git2::Error> {
    let head_is = |repo: &Repository| -> bool {
        repo.find_reference("HEAD")
            .ok()
            .map(|head| head.symbolic_target_bytes() == Some(refname.as_bytes()))
            .unwrap_or(false)
    };
    if !repo.is_bare() && head_is(repo) {
        return Ok(repo.workdir().map(Path::to_path_buf));
    }
    for name in repo.worktrees()?.iter().flatten().flatten() {
        let Ok(worktree) = repo.find_worktree(name) else {
            continue;
        };
        if let Ok(linked) = Repository::open_from_worktree(&worktree)
            && head_is(&linked)
        {
            return Ok(Some(worktree.path().to_path_buf()));
        }
    }
    Ok(None)
}

/// The retry schedule of a lost race: exponential from `first` (capped at 0.5 s), with jitter
/// so two writers that collided do not collide again in step.
fn backoff(first: Duration, attempts: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(attempts - 1)
        .with_jitter()
}

/// Writes `files` (paths with `/`) as nested trees, one `TreeBuilder` per directory; the root's
/// id.
fn write_tree(repo: &Repository, files: &Files) -> Result<Oid, git2::Error> {
    let mut builder = repo.treebuilder(None)?;
    let mut dirs: BTreeMap<&str, Files> = BTreeMap::new();
    for (path, blob) in files {
        match path.split_once('/') {
            None => {
                builder.insert(path, *blob, FILE_MODE)?;
            }
            Some((dir, rest)) => {
                dirs.entry(dir).or_default().insert(rest.to_owned(), *blob);
            }
        }
    }
    for (dir, inner) in dirs {
        let tree = write_tree(repo, &inner)?;
        builder.insert(dir, tree, DIR_MODE)?;
    }
    builder.write()
}

#[cfg(test)]
mod tests;
