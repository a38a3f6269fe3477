//! The baseline store: run records of the target branch, kept in a branch of the project's own
//! repository (`perf-baselines` by default) as one file per machine class and commit,
//! `<machine_class>/<sha>.json`, and shared with other machines by fetch and push.
//!
//! It must never touch the work tree, the index or HEAD: a change is blobs, trees and one commit
//! written straight into the object database, published by one compare-and-swap update of the
//! branch. It never stores a dirty work tree's record, and never overwrites a branch, local or
//! remote, that moved while it was working: it merges what moved and tries again instead.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use chrono::{DateTime, Utc};
use git2::{
    Branch, ErrorCode, ObjectType, Oid, Remote, Repository, Signature, TreeWalkMode, TreeWalkResult,
};

use super::git::{BaselineError, discover};
use crate::record::{self, RecordError, RunRecord};

/// The branch the store uses unless told otherwise.
pub const DEFAULT_BRANCH: &str = crate::config::DEFAULT_BASELINE_BRANCH;

/// How many times `push` tries before it gives up on a remote that keeps moving.
pub const MAX_PUSH_ATTEMPTS: usize = 5;

/// How many times a local change is recomputed when another process moved the branch first.
const MAX_LOCAL_ATTEMPTS: usize = 5;

/// Longest machine class accepted as a directory name.
const MAX_MACHINE_CLASS_LEN: usize = 100;

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

    /// Fetches the remote's baseline branch (a configured remote's name, or a path or URL) and
    /// merges it into the local one: a fast-forward when the local branch is behind, otherwise a
    /// merge commit with both parents holding both sides' files (the rules are on `merge_files`;
    /// on one path with different bytes, the remote's file wins).
    pub fn fetch(&self, remote: &str) -> Result<FetchOutcome, StoreError> {
        let (_, remote_name) = self.remote(remote)?;
        let Some(theirs) = self.download(remote)? else {
            return Ok(FetchOutcome::NothingToFetch);
        };
        if let Some(name) = remote_name {
            // The remote-tracking branch, for people who look with `git log`; nothing reads it.
            let tracking = format!("refs/remotes/{name}/{}", self.branch);
            self.repo
                .reference(&tracking, theirs, true, "perf: fetch the baseline branch")?;
        }
        self.merge_from(theirs, remote)
    }

    /// Pushes the local branch to the remote. When the remote moved since it was last fetched
    /// (another clone pushed first), fetches and merges its records, then pushes again, up to
    /// [`MAX_PUSH_ATTEMPTS`] attempts with a short randomized backoff.
    pub fn push(&self, remote: &str) -> Result<PushOutcome, StoreError> {
        let mut attempts = 0;
        let mut replaced_by_remote = Vec::new();
        let result = (|| -> Result<PushResult, Attempt> {
            attempts += 1;
            // A further attempt means the remote moved: take its records in first.
            if attempts > 1
                && let FetchOutcome::Merged {
                    replaced_by_remote: replaced,
                    ..
                } = self.fetch(remote)?
            {
                replaced_by_remote.extend(replaced);
            }
            let Some(local) = self.tip()? else {
                return Ok(PushResult::NothingToPush);
            };
            self.push_once(remote, local)
        })
        .retry(backoff(Duration::from_millis(20), MAX_PUSH_ATTEMPTS))
        .when(|e| matches!(e, Attempt::LostRace(_)))
        .call();
        match result {
            Ok(result) => Ok(PushOutcome {
                result,
                attempts,
                replaced_by_remote,
            }),
            Err(Attempt::LostRace(reason)) => Err(StoreError::PushRejected {
                remote: remote.to_owned(),
                branch: self.branch.clone(),
                attempts,
                reason,
            }),
            Err(Attempt::Failed(error)) => Err(error),
        }
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

    /// A configured remote by name, else `remote` as a path or URL. The name, if configured.
    fn remote(&self, remote: &str) -> Result<(Remote<'_>, Option<String>), StoreError> {
        if Remote::is_valid_name(remote) {
            match self.repo.find_remote(remote) {
                Ok(found) => return Ok((found, Some(remote.to_owned()))),
                Err(e) if e.code() == ErrorCode::NotFound => {}
                Err(e) => return Err(remote_error(remote, &e)),
            }
        }
        self.repo
            .remote_anonymous(remote)
            .map(|anonymous| (anonymous, None))
            .map_err(|e| remote_error(remote, &e))
    }

    /// Downloads the remote's baseline branch; its commit, `None` when it has none. The commit
    /// is the one advertised on the same connection the objects come from.
    /// The remote's branch commit, its objects fetched into this repository; `None` when the
    /// remote has no such branch. Through the `git` program, so that the credentials and
    /// settings CI gives git (`GIT_CONFIG_*`, credential helpers) apply to any URL; a remote
    /// that cannot be read is an error, never taken for "no branch yet".
    fn download(&self, remote: &str) -> Result<Option<Oid>, StoreError> {
        if self.remote_tip(remote)?.is_none() {
            return Ok(None);
        }
        let incoming = format!("refs/perf-incoming/{}", self.branch);
        let fetched = self.git_program(&[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            remote,
            &format!("+{}:{incoming}", self.refname),
        ])?;
        if !fetched.status.success() {
            return Err(remote_error_detail(remote, fetched.stderr_text()));
        }
        let mut reference = self.repo.find_reference(&incoming)?;
        let theirs = reference.peel_to_commit()?.id();
        reference.delete()?;
        Ok(Some(theirs))
    }

    /// The commit the remote's branch is at (`git ls-remote`), `None` when it has none.
    fn remote_tip(&self, remote: &str) -> Result<Option<Oid>, StoreError> {
        let listed = self.git_program(&["ls-remote", "--exit-code", remote, &self.refname])?;
        match listed.status.code() {
            Some(0) => {}
            // `--exit-code`: the remote answered and has no such ref.
            Some(2) => return Ok(None),
            _ => return Err(remote_error_detail(remote, listed.stderr_text())),
        }
        let stdout = String::from_utf8_lossy(&listed.stdout);
        let line = stdout
            .lines()
            .find(|line| line.ends_with(&format!("\t{}", self.refname)))
            .ok_or_else(|| {
                remote_error_detail(remote, format!("`git ls-remote` printed {stdout:?}"))
            })?;
        let sha = line.split('\t').next().unwrap_or_default();
        Oid::from_str(sha)
            .map(Some)
            .map_err(|e| remote_error_detail(remote, format!("{sha:?}: {}", e.message())))
    }

    /// Runs `git` on this repository, without a shell, never prompting for credentials.
    fn git_program(&self, args: &[&str]) -> Result<GitOutput, StoreError> {
        let output = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(self.repo.path())
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| StoreError::Remote {
                remote: "git".to_owned(),
                detail: format!(
                    "cannot run the git program ({e}).\n  fix: install git and put it on PATH"
                ),
            })?;
        Ok(GitOutput(output))
    }

    /// Brings the fetched commit `theirs` into the local branch.
    fn merge_from(&self, theirs: Oid, label: &str) -> Result<FetchOutcome, StoreError> {
        self.update_branch(|tip| {
            let fast_forward = || Step::Move {
                to: theirs,
                reflog: format!("perf: fetch {label}: fast-forward"),
                outcome: FetchOutcome::FastForwarded {
                    store_commit: theirs.to_string(),
                },
            };
            let Some(ours) = tip else {
                return Ok(fast_forward());
            };
            if ours == theirs || self.repo.graph_descendant_of(ours, theirs)? {
                return Ok(Step::Keep(FetchOutcome::UpToDate));
            }
            if self.repo.graph_descendant_of(theirs, ours)? {
                return Ok(fast_forward());
            }
            let base = match self.repo.merge_base(ours, theirs) {
                Ok(base) => Some(base),
                Err(e) if e.code() == ErrorCode::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            let merged = merge_files(
                &self.files(base)?,
                &self.files(Some(ours))?,
                &self.files(Some(theirs))?,
            );
            let summary = format!("perf: merge the baseline branch of {label}");
            let mut message = format!("{summary}\n");
            if !merged.replaced_by_remote.is_empty() {
                message.push_str("\nReplaced by the remote's record:\n");
                for path in &merged.replaced_by_remote {
                    message.push_str(&format!("{path}\n"));
                }
            }
            let store_commit = self.commit(&merged.files, &[ours, theirs], &message)?;
            Ok(Step::Move {
                to: store_commit,
                reflog: summary,
                outcome: FetchOutcome::Merged {
                    store_commit: store_commit.to_string(),
                    replaced_by_remote: merged.replaced_by_remote,
                },
            })
        })
    }

    /// One push of the local commit `local`. A lost race (the remote branch holds commits this
    /// repository does not, or moved during the push) is `Attempt::LostRace`.
    fn push_once(&self, remote: &str, local: Oid) -> Result<PushResult, Attempt> {
        let (handle, _) = self.remote(remote)?;
        // Where git pushes: the push URL when one is configured.
        let url = match handle.pushurl() {
            Ok(Some(pushurl)) => pushurl,
            Ok(None) => handle.url().map_err(|e| remote_error(remote, &e))?,
            Err(e) => return Err(Attempt::Failed(remote_error(remote, &e))),
        };
        match local_repository_path(url) {
            Some(path) => self.push_to_local_repository(&path, local, remote),
            None => self.push_with_git_program(remote, local),
        }
    }

    /// A lost race unless `local` contains the remote's commit `current` (a fast-forward).
    fn check_fast_forward(&self, current: Option<Oid>, local: Oid) -> Result<(), Attempt> {
        if let Some(theirs) = current {
            let contained =
                self.repo.odb()?.exists(theirs) && self.repo.graph_descendant_of(local, theirs)?;
            if !contained {
                return Err(Attempt::LostRace(format!(
                    "{}: the remote has commits this repository does not (not a fast-forward)",
                    self.refname
                )));
            }
        }
        Ok(())
    }

    /// Pushes through the `git` program, for remotes that run a git server (git://, https,
    /// ssh), so that CI's credentials for git apply. A compare-and-swap on the server: the ref
    /// moves only if it still holds what `ls-remote` just saw (`--force-with-lease`), and only
    /// to a commit that contains it. Any ref the server refuses (moved meanwhile, a hook
    /// declined) is `Attempt::LostRace`, so the next attempt fetches and sees what happened.
    fn push_with_git_program(&self, remote: &str, local: Oid) -> Result<PushResult, Attempt> {
        let current = self.remote_tip(remote)?;
        if current == Some(local) {
            return Ok(PushResult::AlreadyUpToDate);
        }
        self.check_fast_forward(current, local)?;
        let lease = format!(
            "--force-with-lease={}:{}",
            self.refname,
            current.map(|oid| oid.to_string()).unwrap_or_default()
        );
        let refspec = format!("{local}:{}", self.refname);
        let pushed = self.git_program(&["push", "--porcelain", &lease, remote, &refspec])?;
        if pushed.status.success() {
            return Ok(PushResult::Pushed {
                store_commit: local.to_string(),
            });
        }
        // `--porcelain`: a refused ref is a line `!<TAB>from:to<TAB>summary (reason)`.
        let stdout = String::from_utf8_lossy(&pushed.stdout);
        match stdout.lines().find_map(|line| line.strip_prefix("!\t")) {
            Some(refused) => {
                let summary = refused.split('\t').nth(1).unwrap_or(refused);
                Err(Attempt::LostRace(format!("{}: {summary}", self.refname)))
            }
            None => Err(Attempt::Failed(remote_error_detail(
                remote,
                pushed.stderr_text(),
            ))),
        }
    }

    /// Pushes into a repository on this file system by writing its objects and moving its ref
    /// with a compare-and-swap. Not through git2's transport: libgit2's local transport updates
    /// an existing remote ref unconditionally once its own fast-forward check passed, so two
    /// concurrent pushes both "succeed" and the later one silently drops the other's commit.
    fn push_to_local_repository(
        &self,
        path: &Path,
        local: Oid,
        label: &str,
    ) -> Result<PushResult, Attempt> {
        let target = Repository::open(path).map_err(|e| remote_error(label, &e))?;
        let current = match target.find_reference(&self.refname) {
            Ok(reference) => Some(reference.peel_to_commit()?.id()),
            Err(e) if e.code() == ErrorCode::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if current == Some(local) {
            return Ok(PushResult::AlreadyUpToDate);
        }
        self.check_fast_forward(current, local)?;
        if let Some(work_tree) = work_tree_with_branch_checked_out(&target, &self.refname)? {
            return Err(Attempt::Failed(StoreError::BranchCheckedOut {
                branch: self.branch.clone(),
                work_tree,
            }));
        }
        self.send_objects(&target, local, current)
            .map_err(|detail| remote_error_detail(label, detail))?;
        move_ref(&target, &self.refname, current, local, "perf: push")?;
        Ok(PushResult::Pushed {
            store_commit: local.to_string(),
        })
    }

    /// Writes the objects of `local` that `target` lacks (those not reachable from `theirs`)
    /// into `target` as one pack.
    fn send_objects(
        &self,
        target: &Repository,
        local: Oid,
        theirs: Option<Oid>,
    ) -> Result<(), String> {
        let pack = (|| -> Result<Option<git2::Buf>, git2::Error> {
            let mut walk = self.repo.revwalk()?;
            walk.push(local)?;
            if let Some(theirs) = theirs {
                walk.hide(theirs)?;
            }
            let mut builder = self.repo.packbuilder()?;
            builder.insert_walk(&mut walk)?;
            if builder.object_count() == 0 {
                return Ok(None);
            }
            let mut pack = git2::Buf::new();
            builder.write_buf(&mut pack)?;
            Ok(Some(pack))
        })()
        .map_err(|e| e.message().to_owned())?;
        let Some(pack) = pack else {
            return Ok(());
        };
        let odb = target.odb().map_err(|e| e.message().to_owned())?;
        let mut writer = odb.packwriter().map_err(|e| e.message().to_owned())?;
        writer.write_all(&pack).map_err(|e| e.to_string())?;
        writer.commit().map_err(|e| e.message().to_owned())?;
        Ok(())
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

/// What the `git` program printed and how it ended.
struct GitOutput(std::process::Output);

impl std::ops::Deref for GitOutput {
    type Target = std::process::Output;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl GitOutput {
    /// Its standard error, trimmed (what git says went wrong).
    fn stderr_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.0.stderr).trim().to_owned();
        if text.is_empty() {
            format!("git exited with {}", self.0.status)
        } else {
            text
        }
    }
}

fn remote_error(remote: &str, error: &git2::Error) -> StoreError {
    remote_error_detail(remote, error.message().to_owned())
}

fn remote_error_detail(remote: &str, detail: String) -> StoreError {
    StoreError::Remote {
        remote: remote.to_owned(),
        detail,
    }
}

/// The directory of a remote that is a repository on this file system (a path or a file://
/// URL), `None` for a remote reached through a server.
fn local_repository_path(url: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    (!url.contains("://") && Path::new(url).exists()).then(|| PathBuf::from(url))
}

/// Files of a three-way merge, and the paths where the remote's file won.
#[derive(Debug, PartialEq, Eq)]
struct MergedFiles {
    files: Files,
    replaced_by_remote: Vec<String>,
}

/// Merges the files of two commits of the branch given their merge base's (empty when they
/// share no history): every file either side added is kept (a union); a file only one side
/// changed or removed since the base takes that side's change, so a prune stays pruned; a file
/// both sides changed differently is the remote's (`theirs`), and one side removed while the
/// other replaced it is kept (the newer measurement).
fn merge_files(base: &Files, ours: &Files, theirs: &Files) -> MergedFiles {
    let paths: BTreeSet<&String> = base
        .keys()
        .chain(ours.keys())
        .chain(theirs.keys())
        .collect();
    let mut merged = MergedFiles {
        files: Files::new(),
        replaced_by_remote: Vec::new(),
    };
    for path in paths {
        let (base, ours, theirs) = (base.get(path), ours.get(path), theirs.get(path));
        let kept = if ours == theirs || ours == base {
            theirs
        } else if theirs == base {
            ours
        } else if ours.is_some() && theirs.is_some() {
            merged.replaced_by_remote.push(path.clone());
            theirs
        } else {
            ours.or(theirs)
        };
        if let Some(blob) = kept {
            merged.files.insert(path.clone(), *blob);
        }
    }
    merged
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

/// `<machine_class>/<sha>.json`, after checking both are safe to use as path components.
pub fn record_path(machine_class: &str, commit: &str) -> Result<String, StoreError> {
    check_machine_class(machine_class)?;
    if !is_full_sha(commit) {
        return Err(StoreError::InvalidCommit {
            commit: commit.to_owned(),
        });
    }
    Ok(format!("{machine_class}/{commit}.json"))
}

/// The machine class and commit of a record path, `None` for any other file.
fn parse_record_path(path: &str) -> Option<(&str, &str)> {
    let (machine_class, name) = path.split_once('/')?;
    let commit = name.strip_suffix(".json")?;
    (check_machine_class(machine_class).is_ok() && is_full_sha(commit))
        .then_some((machine_class, commit))
}

/// A machine class names one directory: letters, digits, `.`, `_` and `-`, not starting with
/// `.` (no `..`, no hidden directory) or `-` (never read as an option).
fn check_machine_class(class: &str) -> Result<(), StoreError> {
    let reason = if class.is_empty() {
        Some("it is empty")
    } else if class.len() > MAX_MACHINE_CLASS_LEN {
        Some("it is longer than 100 characters")
    } else if class.starts_with('.') || class.starts_with('-') {
        Some("it starts with '.' or '-'")
    } else if !class
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("it has a character other than letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidMachineClass {
            class: class.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A full SHA-1 or SHA-256 object name in lowercase hex.
fn is_full_sha(commit: &str) -> bool {
    matches!(commit.len(), 40 | 64)
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    //! Real repositories in temp dirs: a project clone with a committed file, bare "remotes"
    //! reached by path, file:// or git:// (a real `git daemon`, so pushes meet a real server).

    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::sync::Barrier;
    use std::time::Instant;

    use git2::{Status, StatusOptions};
    use tempfile::TempDir;

    use super::*;

    const REF: &str = "refs/heads/perf-baselines";

    fn sha(n: u32) -> String {
        format!("{n:040x}")
    }

    /// A minimal valid record of commit `sha(n)` on `machine_class`, created on day `n`.
    fn record(machine_class: &str, n: u32) -> RunRecord {
        record_created(
            machine_class,
            n,
            &format!("2026-01-{:02}T00:00:00Z", n % 28 + 1),
        )
    }

    fn record_created(machine_class: &str, n: u32, created_at: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "commit": sha(n), "dirty": false, "branch": "main",
            "created_at": created_at, "profile": "quick",
            "environment": {
                "machine_class": machine_class, "cpu_model": "cpu", "cores": 2,
                "os": "linux x86_64", "rustc": "rustc 1.95.0", "valgrind": null,
                "gungraun_runner": null,
                "services": {
                    "mode": "native", "reason": "--services native",
                    "postgres_version": "15.18", "redis_version": "7.0.15",
                    "postgres_image": null, "redis_image": null
                },
                "config_hash": "0123456789abcdef"
            },
            "phases": [],
            "metrics": [{ "name": "io/due_cards/sql_statements", "suite": "io_counts",
                          "unit": "statements", "kind": "deterministic", "value": 30.0 }],
        }))
        .expect("a valid record")
    }

    /// A project checkout: a non-bare repository with one committed file on its branch.
    fn project() -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        std::fs::write(dir.path().join("README.md"), "the project\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("README.md")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = Signature::now("test", "test@example.invalid").unwrap();
        repo.commit(Some("HEAD"), &signature, &signature, "initial", &tree, &[])
            .unwrap();
        dir
    }

    /// A project checkout whose `origin` is `url`.
    fn clone_of(url: &str) -> TempDir {
        let dir = project();
        Repository::open(dir.path())
            .unwrap()
            .remote("origin", url)
            .unwrap();
        dir
    }

    fn bare_remote() -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        Repository::init_bare(dir.path()).unwrap();
        dir
    }

    fn store(dir: &Path) -> BaselineStore {
        BaselineStore::open(dir, DEFAULT_BRANCH).unwrap()
    }

    fn tip(dir: &Path) -> Option<Oid> {
        let repo = Repository::open(dir).unwrap();
        repo.find_reference(REF).ok().map(|r| r.target().unwrap())
    }

    fn paths(dir: &Path) -> Vec<String> {
        store(dir)
            .list()
            .unwrap()
            .iter()
            .map(StoredEntry::path)
            .collect()
    }

    /// Commits `contents` at `path` on top of the store branch with plain git2 (as another tool
    /// or a bad hand edit might), not through the store.
    fn commit_raw_file(dir: &Path, path: &str, contents: &[u8]) -> Oid {
        let repo = Repository::open(dir).unwrap();
        let parent = repo.find_reference(REF).unwrap().peel_to_commit().unwrap();
        let root = parent.tree().unwrap();
        let (class, name) = path.split_once('/').unwrap();
        let existing = root
            .get_name(class)
            .map(|entry| repo.find_tree(entry.id()).unwrap());
        let mut inner = repo.treebuilder(existing.as_ref()).unwrap();
        inner
            .insert(name, repo.blob(contents).unwrap(), FILE_MODE)
            .unwrap();
        let inner = inner.write().unwrap();
        let mut outer = repo.treebuilder(Some(&root)).unwrap();
        outer.insert(class, inner, DIR_MODE).unwrap();
        let tree = repo.find_tree(outer.write().unwrap()).unwrap();
        let signature = Signature::now("test", "test@example.invalid").unwrap();
        repo.commit(Some(REF), &signature, &signature, "raw", &tree, &[&parent])
            .unwrap()
    }

    /// `git daemon` serving the repositories under `base` on a free loopback port with pushes
    /// enabled: the smart protocol a real server speaks. Stopped (by its pid) on drop.
    struct GitDaemon {
        child: Child,
        port: u16,
    }

    impl GitDaemon {
        fn serve(base: &Path) -> Self {
            let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
            let exec_path = String::from_utf8(exec_path.stdout).unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // The daemon binary itself, so that killing the child stops the server.
            let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
                .args([
                    "--reuseaddr",
                    "--listen=127.0.0.1",
                    &format!("--port={port}"),
                    &format!("--base-path={}", base.display()),
                    "--export-all",
                    "--enable=receive-pack",
                    "--informative-errors",
                ])
                .arg(base)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("git daemon starts");
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "git daemon did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
            Self { child, port }
        }

        fn url(&self, repo: &Path) -> String {
            format!(
                "git://127.0.0.1:{}/{}",
                self.port,
                repo.file_name().unwrap().to_str().unwrap()
            )
        }
    }

    impl Drop for GitDaemon {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A bare remote under a directory of its own, served by `git daemon`.
    fn served_remote() -> (TempDir, PathBuf, GitDaemon) {
        let base = tempfile::tempdir().unwrap();
        let remote = base.path().join("remote.git");
        Repository::init_bare(&remote).unwrap();
        let daemon = GitDaemon::serve(base.path());
        (base, remote, daemon)
    }

    #[test]
    fn put_then_get_round_trips() {
        let dir = project();
        let store = store(dir.path());
        let stored = record("linux-x86_64-2c-0000abcd", 1);
        let outcome = store.put(&stored).unwrap();
        let path = format!("linux-x86_64-2c-0000abcd/{}.json", sha(1));
        assert!(matches!(&outcome, PutOutcome::Stored { path: p, .. } if *p == path));
        assert_eq!(
            store.get("linux-x86_64-2c-0000abcd", &sha(1)).unwrap(),
            Some(stored)
        );
        assert_eq!(
            store.get("linux-x86_64-2c-0000abcd", &sha(2)).unwrap(),
            None
        );
        assert_eq!(store.get("other-class", &sha(1)).unwrap(), None);
        let repo = Repository::open(dir.path()).unwrap();
        let branch = repo.find_reference(REF).unwrap().peel_to_commit().unwrap();
        assert_eq!(branch.parent_count(), 0, "the branch starts as an orphan");
        assert!(
            branch
                .message()
                .unwrap()
                .contains("linux-x86_64-2c-0000abcd")
        );
        assert!(branch.message().unwrap().contains(&sha(1)));
    }

    #[test]
    fn identical_put_is_already_stored_and_makes_no_commit() {
        let dir = project();
        let store = store(dir.path());
        store.put(&record("m", 1)).unwrap();
        let before = tip(dir.path());
        let outcome = store.put(&record("m", 1)).unwrap();
        assert_eq!(
            outcome,
            PutOutcome::AlreadyStored {
                path: format!("m/{}.json", sha(1))
            }
        );
        assert_eq!(tip(dir.path()), before);
    }

    #[test]
    fn a_re_measurement_replaces_the_record() {
        let dir = project();
        let store = store(dir.path());
        store.put(&record("m", 1)).unwrap();
        let first = tip(dir.path()).unwrap();
        let again = record_created("m", 1, "2026-02-01T00:00:00Z");
        let outcome = store.put(&again).unwrap();
        assert!(
            matches!(outcome, PutOutcome::Replaced { .. }),
            "{outcome:?}"
        );
        assert_eq!(store.get("m", &sha(1)).unwrap(), Some(again));
        let repo = Repository::open(dir.path()).unwrap();
        let second = repo.find_commit(tip(dir.path()).unwrap()).unwrap();
        assert_eq!(second.parent_ids().collect::<Vec<_>>(), vec![first]);
        assert!(second.message().unwrap().contains("re-measurement"));
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn put_never_touches_the_work_tree_the_index_or_head() {
        let dir = project();
        let repo = Repository::open(dir.path()).unwrap();
        let head_before = repo.head().unwrap().target().unwrap();
        let head_name = repo.head().unwrap().name().unwrap().to_owned();
        let index_before = std::fs::read(repo.path().join("index")).unwrap();
        let store = store(dir.path());
        store.put(&record("m", 1)).unwrap();
        store.put(&record("n", 2)).unwrap();
        store.prune(1).unwrap();
        let mut options = StatusOptions::new();
        options.include_untracked(true).include_ignored(true);
        let statuses = repo.statuses(Some(&mut options)).unwrap();
        let changed: Vec<(String, Status)> = statuses
            .iter()
            .map(|s| (s.path().unwrap().to_owned(), s.status()))
            .collect();
        assert!(changed.is_empty(), "the work tree changed: {changed:?}");
        let head = repo.head().unwrap();
        assert_eq!(head.name().unwrap(), head_name);
        assert_eq!(head.target().unwrap(), head_before);
        assert_eq!(
            std::fs::read(repo.path().join("index")).unwrap(),
            index_before
        );
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != ".git")
            .collect();
        assert_eq!(files, vec!["README.md"]);
    }

    #[test]
    fn a_dirty_record_is_refused_and_the_branch_is_unchanged() {
        let dir = project();
        let store = store(dir.path());
        store.put(&record("m", 1)).unwrap();
        let before = tip(dir.path());
        let mut dirty = record("m", 2);
        dirty.dirty = true;
        let error = store.put(&dirty).unwrap_err();
        assert!(matches!(error, StoreError::DirtyRecord { .. }));
        let message = error.to_string();
        assert!(
            message.contains("dirty work tree's record is never stored"),
            "{message}"
        );
        assert!(message.contains("commit"), "{message}");
        assert_eq!(tip(dir.path()), before);
    }

    #[test]
    fn machine_classes_that_are_not_one_safe_path_component_are_refused() {
        let dir = project();
        let store = store(dir.path());
        for class in [
            "",
            ".",
            "..",
            "../escape",
            "a/b",
            "a\\b",
            ".hidden",
            "-option",
            "with space",
            "ümlaut",
            "nul\0byte",
            &"x".repeat(101),
        ] {
            let error = store.put(&record(class, 1)).unwrap_err();
            assert!(
                matches!(error, StoreError::InvalidMachineClass { .. }),
                "{class:?}: {error}"
            );
            assert!(error.to_string().contains("machine_class"), "{error}");
            assert!(matches!(
                store.get(class, &sha(1)),
                Err(StoreError::InvalidMachineClass { .. })
            ));
        }
        assert_eq!(tip(dir.path()), None, "nothing was written");
        for class in ["linux-x86_64-2c-0000abcd", "ci_large.v2", &"x".repeat(100)] {
            store.put(&record(class, 1)).unwrap();
        }
        assert!(matches!(
            store.get("m", "abc123"),
            Err(StoreError::InvalidCommit { .. })
        ));
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_it_and_list_still_works() {
        let newer = br#"{"schema_version": 99, "created_at": "2026-01-01T00:00:00Z"}"#.to_vec();
        let mut dirty = record("m", 2);
        dirty.dirty = true;
        let cases: [(&str, Vec<u8>, &str); 4] = [
            ("not JSON", b"{not json".to_vec(), "not JSON"),
            (
                "another commit's record",
                serde_json::to_vec(&record("m", 3)).unwrap(),
                "not the one its path names",
            ),
            (
                "a dirty record",
                serde_json::to_vec(&dirty).unwrap(),
                "dirty",
            ),
            ("a newer schema version", newer, "schema_version 99"),
        ];
        for (case, contents, says) in cases {
            let dir = project();
            let store = store(dir.path());
            store.put(&record("m", 1)).unwrap();
            let path = format!("m/{}.json", sha(2));
            let corrupt_tip = commit_raw_file(dir.path(), &path, &contents);
            let error = store.get("m", &sha(2)).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(&format!("perf-baselines:{path}")),
                "{case}: {message}"
            );
            assert!(message.contains(says), "{case}: {message}");
            assert!(message.contains("fix:"), "{case}: {message}");
            assert_eq!(store.get("m", &sha(1)).unwrap(), Some(record("m", 1)));
            let listed: Vec<String> = store
                .list()
                .unwrap()
                .iter()
                .map(StoredEntry::path)
                .collect();
            assert_eq!(listed, vec![format!("m/{}.json", sha(1)), path], "{case}");
            assert_eq!(
                tip(dir.path()),
                Some(corrupt_tip),
                "{case}: the branch was left as it was"
            );
        }
    }

    #[test]
    fn list_is_sorted_and_reads_sizes_not_records() {
        let dir = project();
        let store = store(dir.path());
        for (class, n) in [("b", 2), ("a-b", 1), ("a", 3), ("a", 1)] {
            store.put(&record(class, n)).unwrap();
        }
        // A file outside the layout (e.g. a README on the branch) is not a record.
        commit_raw_file(dir.path(), "a/README.md", b"not a record");
        let entries = store.list().unwrap();
        let keys: Vec<(&str, String)> = entries
            .iter()
            .map(|e| (e.machine_class.as_str(), e.commit.clone()))
            .collect();
        assert_eq!(
            keys,
            vec![("a", sha(1)), ("a", sha(3)), ("a-b", sha(1)), ("b", sha(2))]
        );
        let mut json = serde_json::to_vec_pretty(&record("a", 1)).unwrap();
        json.push(b'\n');
        assert_eq!(entries[0].size, json.len() as u64);
    }

    #[test]
    fn fetch_fast_forwards_a_clone_that_is_behind() {
        let remote = bare_remote();
        let url = remote.path().to_str().unwrap();
        let (a, b) = (clone_of(url), clone_of(url));
        store(a.path()).put(&record("m", 1)).unwrap();
        store(a.path()).push("origin").unwrap();
        let b_store = store(b.path());
        let outcome = b_store.fetch("origin").unwrap();
        assert!(
            matches!(outcome, FetchOutcome::FastForwarded { .. }),
            "{outcome:?}"
        );
        assert_eq!(tip(b.path()), tip(a.path()));
        assert_eq!(b_store.get("m", &sha(1)).unwrap(), Some(record("m", 1)));
        let tracking = Repository::open(b.path())
            .unwrap()
            .find_reference("refs/remotes/origin/perf-baselines")
            .unwrap()
            .target();
        assert_eq!(tracking, tip(a.path()));
        assert_eq!(b_store.fetch("origin").unwrap(), FetchOutcome::UpToDate);

        store(a.path()).put(&record("m", 2)).unwrap();
        store(a.path()).push("origin").unwrap();
        let outcome = b_store.fetch("origin").unwrap();
        assert!(
            matches!(outcome, FetchOutcome::FastForwarded { .. }),
            "{outcome:?}"
        );
        assert_eq!(tip(b.path()), tip(a.path()));
        assert_eq!(paths(b.path()).len(), 2);
    }

    #[test]
    fn fetch_of_divergent_branches_merges_a_union_where_the_remote_wins() {
        let remote = bare_remote();
        let url = remote.path().to_str().unwrap();
        let (a, b) = (clone_of(url), clone_of(url));
        let theirs = record_created("m", 9, "2026-03-01T00:00:00Z");
        let ours = record_created("m", 9, "2026-03-02T00:00:00Z");
        let a_store = store(a.path());
        a_store.put(&record("m", 1)).unwrap();
        a_store.put(&theirs).unwrap();
        a_store.push("origin").unwrap();
        let b_store = store(b.path());
        b_store.put(&record("n", 2)).unwrap();
        b_store.put(&ours).unwrap();
        let b_before = tip(b.path()).unwrap();

        // The remote by URL this time, not by name: both work.
        let outcome = b_store.fetch(url).unwrap();
        let path_9 = format!("m/{}.json", sha(9));
        let FetchOutcome::Merged {
            store_commit,
            replaced_by_remote,
        } = outcome
        else {
            panic!("expected a merge, got {outcome:?}");
        };
        assert_eq!(replaced_by_remote, vec![path_9.clone()]);
        let repo = Repository::open(b.path()).unwrap();
        let merge = repo.find_commit(tip(b.path()).unwrap()).unwrap();
        assert_eq!(merge.id().to_string(), store_commit);
        assert_eq!(
            merge.parent_ids().collect::<Vec<_>>(),
            vec![b_before, tip(a.path()).unwrap()]
        );
        assert_eq!(
            paths(b.path()),
            vec![
                format!("m/{}.json", sha(1)),
                path_9,
                format!("n/{}.json", sha(2)),
            ]
        );
        assert_eq!(b_store.get("m", &sha(9)).unwrap(), Some(theirs));
        assert_eq!(b_store.fetch(url).unwrap(), FetchOutcome::UpToDate);
    }

    #[test]
    fn a_record_pruned_on_one_side_stays_pruned_after_a_merge() {
        let remote = bare_remote();
        let url = remote.path().to_str().unwrap();
        let (a, b) = (clone_of(url), clone_of(url));
        let a_store = store(a.path());
        for n in 1..=3 {
            a_store.put(&record("m", n)).unwrap();
        }
        a_store.push("origin").unwrap();
        let b_store = store(b.path());
        b_store.fetch("origin").unwrap();
        a_store.prune(1).unwrap();
        a_store.push("origin").unwrap();
        b_store.put(&record("m", 4)).unwrap();
        let outcome = b_store.fetch("origin").unwrap();
        assert!(
            matches!(outcome, FetchOutcome::Merged { .. }),
            "{outcome:?}"
        );
        assert_eq!(
            paths(b.path()),
            vec![format!("m/{}.json", sha(3)), format!("m/{}.json", sha(4))]
        );
    }

    #[test]
    fn nothing_to_fetch_nothing_to_push_and_up_to_date() {
        let remote = bare_remote();
        let url = format!("file://{}", remote.path().display());
        let dir = clone_of(&url);
        let store = store(dir.path());
        assert_eq!(store.fetch("origin").unwrap(), FetchOutcome::NothingToFetch);
        let outcome = store.push("origin").unwrap();
        assert_eq!(outcome.result, PushResult::NothingToPush);
        store.put(&record("m", 1)).unwrap();
        let outcome = store.push("origin").unwrap();
        assert!(matches!(outcome.result, PushResult::Pushed { .. }));
        assert_eq!(outcome.attempts, 1);
        assert_eq!(tip(remote.path()), tip(dir.path()));
        let outcome = store.push("origin").unwrap();
        assert_eq!(outcome.result, PushResult::AlreadyUpToDate);
        assert_eq!(store.fetch("origin").unwrap(), FetchOutcome::UpToDate);
        let error = store.fetch("no-such-remote").unwrap_err();
        assert!(matches!(error, StoreError::Remote { .. }), "{error}");
    }

    /// Issue 13, defect 7: `actions/checkout` (fetch-depth 0) leaves the baseline branch as
    /// `origin/perf-baselines` only. A record stored there started an orphan branch whose push
    /// was refused; it must go on top of origin's, read it, and push as a fast-forward.
    #[test]
    fn without_a_local_branch_a_record_goes_on_top_of_origins_remote_tracking_branch() {
        let (_base, remote, daemon) = served_remote();
        let url = daemon.url(&remote);
        let (a, b) = (clone_of(&url), clone_of(&url));
        store(a.path()).put(&record("m", 1)).unwrap();
        store(a.path()).push("origin").unwrap();
        // What `git fetch` (as actions/checkout runs it) leaves in b: a remote-tracking branch.
        let fetched = Command::new("git")
            .current_dir(b.path())
            .args([
                "fetch",
                "--quiet",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ])
            .status()
            .unwrap();
        assert!(fetched.success());
        let b_store = store(b.path());
        assert!(tip(b.path()).is_none(), "no local branch yet");
        assert_eq!(
            b_store.locate("m", &sha(1)).unwrap().map(|(at, _)| at),
            Some(format!("origin/perf-baselines:m/{}.json", sha(1)))
        );
        b_store.put(&record("n", 2)).unwrap();
        let outcome = b_store.push("origin").unwrap();
        assert_eq!(outcome.attempts, 1, "a fast-forward: {outcome:?}");
        assert_eq!(
            paths(&remote),
            vec![format!("m/{}.json", sha(1)), format!("n/{}.json", sha(2))]
        );
    }

    /// Issue 13, defect 7: a fetch that failed was taken for "no branch yet".
    #[test]
    fn a_remote_that_cannot_be_read_is_an_error_not_an_empty_branch() {
        // Port 1 on loopback: nothing listens there.
        let dir = clone_of("git://127.0.0.1:1/remote.git");
        let store = store(dir.path());
        let error = store.fetch("origin").unwrap_err();
        assert!(matches!(error, StoreError::Remote { .. }), "{error}");
        store.put(&record("m", 1)).unwrap();
        let error = store.push("origin").unwrap_err();
        assert!(matches!(error, StoreError::Remote { .. }), "{error}");
    }

    /// Clone A pushes; clone B, which has not fetched since, pushes: its first attempt is
    /// refused, it fetches, merges and lands on the second.
    fn stale_push_lands_on_the_second_attempt(url: &str, remote: &Path) {
        let (a, b) = (clone_of(url), clone_of(url));
        store(a.path()).put(&record("m", 1)).unwrap();
        assert_eq!(store(a.path()).push("origin").unwrap().attempts, 1);
        let b_store = store(b.path());
        b_store.put(&record("n", 2)).unwrap();
        let outcome = b_store.push("origin").unwrap();
        assert_eq!(outcome.attempts, 2, "{outcome:?}");
        assert!(matches!(outcome.result, PushResult::Pushed { .. }));
        assert_eq!(tip(remote), tip(b.path()));
        assert_eq!(
            paths(remote),
            vec![format!("m/{}.json", sha(1)), format!("n/{}.json", sha(2))]
        );
    }

    #[test]
    fn stale_push_to_a_file_url_fetches_merges_and_lands_on_the_second_attempt() {
        let remote = bare_remote();
        let url = format!("file://{}", remote.path().display());
        stale_push_lands_on_the_second_attempt(&url, remote.path());
    }

    #[test]
    fn stale_push_over_git_protocol_fetches_merges_and_lands_on_the_second_attempt() {
        let (_base, remote, daemon) = served_remote();
        stale_push_lands_on_the_second_attempt(&daemon.url(&remote), &remote);
    }

    /// Three clones, all up to date with the remote, put a record each and push at the same
    /// moment, round after round. The commits share their parent, so a remote that checks what
    /// it overwrites accepts one and refuses the others: every round, some pusher needs another
    /// attempt (fetch, merge, push), and every record of every round lands on the remote. (A
    /// remote that loses updates shows pushers all done in one attempt and records missing.)
    /// Three, not two: with two, the loser nearly always sees the winner's commit before it
    /// sends anything; with three, pushes also lose at the ref update itself (the local
    /// compare-and-swap, the server's "failed to update ref").
    fn concurrent_pushes_all_land(url: &str, remote: &Path) {
        const ROUNDS: u32 = 6;
        let clones = [clone_of(url), clone_of(url), clone_of(url)];
        for round in 0..ROUNDS {
            for clone in &clones {
                store(clone.path()).fetch("origin").unwrap();
            }
            let barrier = Barrier::new(clones.len());
            let attempts: Vec<usize> = std::thread::scope(|scope| {
                let pushers: Vec<_> = (0..clones.len())
                    .map(|i| {
                        let (clone, barrier) = (&clones[i], &barrier);
                        scope.spawn(move || {
                            let store = store(clone.path());
                            store.put(&record(&format!("class-{i}"), round)).unwrap();
                            barrier.wait();
                            store.push("origin").unwrap().attempts
                        })
                    })
                    .collect();
                pushers.into_iter().map(|p| p.join().unwrap()).collect()
            });
            let expected: Vec<String> = (0..clones.len())
                .flat_map(|i| (0..=round).map(move |r| format!("class-{i}/{}.json", sha(r))))
                .collect();
            assert_eq!(
                paths(remote),
                expected,
                "round {round}, attempts {attempts:?}"
            );
            assert!(
                attempts.iter().any(|&a| a > 1),
                "round {round}: every push succeeded at once ({attempts:?})"
            );
        }
    }

    #[test]
    fn concurrent_pushes_to_a_path_both_land() {
        let remote = bare_remote();
        concurrent_pushes_all_land(remote.path().to_str().unwrap(), remote.path());
    }

    #[test]
    fn concurrent_pushes_over_git_protocol_both_land() {
        let (_base, remote, daemon) = served_remote();
        concurrent_pushes_all_land(&daemon.url(&remote), &remote);
    }

    #[test]
    fn a_push_the_server_rejects_is_an_error_not_a_success() {
        let (_base, remote, daemon) = served_remote();
        let hook = remote.join("hooks").join("pre-receive");
        std::fs::write(
            &hook,
            "#!/bin/sh\necho 'baselines are read-only here' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = clone_of(&daemon.url(&remote));
        let store = store(dir.path());
        store.put(&record("m", 1)).unwrap();
        let error = store.push("origin").unwrap_err();
        let StoreError::PushRejected {
            attempts, reason, ..
        } = &error
        else {
            panic!("expected a rejection, got {error}");
        };
        assert_eq!(*attempts, MAX_PUSH_ATTEMPTS);
        assert!(reason.contains("hook declined"), "{reason}");
        assert!(error.to_string().contains("fix:"), "{error}");
        assert_eq!(tip(&remote), None, "the remote branch was not created");
    }

    #[test]
    fn prune_keeps_the_newest_records_of_each_machine_class() {
        let dir = project();
        let store = store(dir.path());
        for (n, created) in [(1, "04"), (2, "02"), (3, "03"), (4, "01")] {
            store
                .put(&record_created(
                    "a",
                    n,
                    &format!("2026-05-{created}T00:00:00Z"),
                ))
                .unwrap();
        }
        store.put(&record("b", 5)).unwrap();
        commit_raw_file(dir.path(), &format!("b/{}.json", sha(6)), b"{broken");
        let before = tip(dir.path()).unwrap();

        assert!(matches!(store.prune(0), Err(StoreError::KeepNothing)));
        let outcome = store.prune(2).unwrap();
        let removed: Vec<String> = outcome.removed.iter().map(StoredEntry::path).collect();
        assert_eq!(
            removed,
            vec![format!("a/{}.json", sha(2)), format!("a/{}.json", sha(4))]
        );
        let unreadable: Vec<String> = outcome
            .removed_unreadable
            .iter()
            .map(StoredEntry::path)
            .collect();
        assert_eq!(unreadable, vec![format!("b/{}.json", sha(6))]);
        assert_eq!(outcome.kept, 3);
        assert_eq!(
            paths(dir.path()),
            vec![
                format!("a/{}.json", sha(1)),
                format!("a/{}.json", sha(3)),
                format!("b/{}.json", sha(5)),
            ]
        );
        let repo = Repository::open(dir.path()).unwrap();
        let pruned = repo.find_commit(tip(dir.path()).unwrap()).unwrap();
        assert_eq!(
            pruned.parent_ids().collect::<Vec<_>>(),
            vec![before],
            "one commit"
        );
        assert_eq!(outcome.store_commit, Some(pruned.id().to_string()));

        let again = store.prune(2).unwrap();
        assert_eq!(again.store_commit, None);
        assert_eq!(tip(dir.path()), Some(pruned.id()));
    }

    #[test]
    fn the_store_refuses_to_move_a_branch_that_is_checked_out() {
        let dir = project();
        let store = store(dir.path());
        store.put(&record("m", 1)).unwrap();
        let repo = Repository::open(dir.path()).unwrap();
        repo.set_head(REF).unwrap();
        let before = tip(dir.path());
        let error = store.put(&record("m", 2)).unwrap_err();
        assert!(
            matches!(error, StoreError::BranchCheckedOut { .. }),
            "{error}"
        );
        assert_eq!(tip(dir.path()), before);
    }

    #[test]
    fn a_ref_moves_only_from_the_value_the_writer_saw() {
        let dir = project();
        let repo = Repository::open(dir.path()).unwrap();
        let head = repo.head().unwrap().target().unwrap();
        let blob = repo.blob(b"x").unwrap();
        let other = repo
            .commit(
                None,
                &Signature::now("t", "t@example.invalid").unwrap(),
                &Signature::now("t", "t@example.invalid").unwrap(),
                "other",
                &repo
                    .find_tree(write_tree(&repo, &Files::from([("f".to_owned(), blob)])).unwrap())
                    .unwrap(),
                &[],
            )
            .unwrap();
        // Absent as expected: created.
        assert!(move_ref(&repo, REF, None, head, "test").is_ok());
        // Expected absent, but another writer created it: refused, left as it is.
        assert!(matches!(
            move_ref(&repo, REF, None, other, "test"),
            Err(Attempt::LostRace(_))
        ));
        // Expected an old value, but it moved: refused, left as it is.
        assert!(matches!(
            move_ref(&repo, REF, Some(other), other, "test"),
            Err(Attempt::LostRace(_))
        ));
        assert_eq!(tip(dir.path()), Some(head));
        // Another writer holds the lock: refused.
        let lock = repo.path().join("refs/heads/perf-baselines.lock");
        std::fs::write(&lock, b"").unwrap();
        assert!(matches!(
            move_ref(&repo, REF, Some(head), other, "test"),
            Err(Attempt::LostRace(_))
        ));
        std::fs::remove_file(&lock).unwrap();
        // Still at the expected value: moved.
        assert!(move_ref(&repo, REF, Some(head), other, "test").is_ok());
        assert_eq!(tip(dir.path()), Some(other));
    }

    /// Regression: libgit2's non-forced `reference()` checks that a ref is absent before it
    /// takes the lock, so two writers creating the branch at once both "succeeded" and one
    /// commit was lost (seen as a record missing after concurrent first pushes). The race
    /// window is narrow: 500 rounds caught it every time, in under a second.
    #[test]
    fn of_writers_creating_the_branch_at_once_exactly_one_wins() {
        let dir = project();
        let head = Repository::open(dir.path())
            .unwrap()
            .head()
            .unwrap()
            .target()
            .unwrap();
        for round in 0..500 {
            let refname = format!("refs/heads/race-{round}");
            let barrier = Barrier::new(2);
            let won = std::thread::scope(|scope| {
                let writers: Vec<_> = (0..2)
                    .map(|_| {
                        let (refname, barrier, dir) = (&refname, &barrier, dir.path());
                        scope.spawn(move || {
                            let repo = Repository::open(dir).unwrap();
                            barrier.wait();
                            move_ref(&repo, refname, None, head, "test").is_ok()
                        })
                    })
                    .collect();
                writers
                    .into_iter()
                    .map(|w| w.join().unwrap())
                    .filter(|&ok| ok)
                    .count()
            });
            assert_eq!(won, 1, "round {round}");
        }
    }

    #[test]
    fn an_invalid_branch_name_is_refused() {
        let dir = project();
        for branch in ["", "has space", "a..b", "-x", "HEAD", "ends.lock"] {
            assert!(
                matches!(
                    BaselineStore::open(dir.path(), branch),
                    Err(StoreError::InvalidBranch { .. })
                ),
                "{branch:?}"
            );
        }
    }

    #[test]
    fn merge_of_files_keeps_additions_deletions_and_the_remotes_conflicting_file() {
        let oid = |n: u8| Oid::from_bytes(&[n; 20]).unwrap();
        let files = |entries: &[(&str, u8)]| -> Files {
            entries
                .iter()
                .map(|(p, n)| ((*p).to_owned(), oid(*n)))
                .collect()
        };
        let base = files(&[
            ("kept", 1),
            ("pruned-by-them", 2),
            ("pruned-by-us", 3),
            ("both", 4),
            ("re-measured-vs-pruned", 5),
        ]);
        let ours = files(&[
            ("kept", 1),
            ("pruned-by-them", 2),
            ("both", 40),
            ("ours-only", 6),
            ("re-measured-vs-pruned", 50),
        ]);
        let theirs = files(&[
            ("kept", 1),
            ("pruned-by-us", 3),
            ("both", 41),
            ("theirs-only", 7),
        ]);
        let merged = merge_files(&base, &ours, &theirs);
        assert_eq!(
            merged.files,
            files(&[
                ("kept", 1),
                ("both", 41),
                ("ours-only", 6),
                ("theirs-only", 7),
                ("re-measured-vs-pruned", 50)
            ])
        );
        assert_eq!(merged.replaced_by_remote, vec!["both".to_owned()]);
    }
}
