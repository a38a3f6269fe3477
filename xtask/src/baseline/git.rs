//! Git access: which commit is measured (HEAD, dirty or not), the default base and how it was
//! chosen, first-parent ancestors, revision resolution, subjects, and checking a revision out
//! in a worktree to measure it. With `store`, the only code that knows git.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{Oid, Repository, StatusOptions};

use crate::record::{self, RecordError, RunRecord};

/// Errors of the git side.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(
        "{path} is not inside a git repository ({detail}).\n  fix: run from a git clone of the project"
    )]
    NotARepository { path: PathBuf, detail: String },
    #[error(
        "{rev:?} does not name a commit in this repository ({detail}).\n  fix: pass a branch, tag or sha that `git rev-parse {rev}` resolves (fetch it first if it is remote)"
    )]
    UnknownRevision { rev: String, detail: String },
    #[error(
        "the target branch {branch:?} is neither a local branch nor origin's remote-tracking branch, so there is no merge-base to compare with.\n  fix: correct `target_branch` in [workspace.metadata.perf], fetch it (`git fetch origin {branch}`; in GitHub Actions, check out with `fetch-depth: 0`), or pass --base <rev>"
    )]
    TargetBranchNotFound { branch: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("`git {args}` failed: {detail}")]
    GitProgram { args: String, detail: String },
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// The repository `path` is in, or an error naming the fix.
pub fn discover(path: &Path) -> Result<Repository, BaselineError> {
    Repository::discover(path).map_err(|e| BaselineError::NotARepository {
        path: path.to_path_buf(),
        detail: e.message().to_owned(),
    })
}

/// The commit a run measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadState {
    pub commit: String,
    pub dirty: bool,
    pub branch: Option<String>,
}

/// The baseline commit and, in words, how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChoice {
    pub commit: String,
    pub how_chosen: String,
}

/// The repository the workspace lives in.
pub struct GitRepo {
    repo: Repository,
}

impl GitRepo {
    pub fn open(path: &Path) -> Result<Self, BaselineError> {
        discover(path).map(|repo| Self { repo })
    }

    /// The repository's work tree (its git directory when it has none).
    pub fn root(&self) -> &Path {
        self.repo.workdir().unwrap_or_else(|| self.repo.path())
    }

    /// HEAD's commit, whether the work tree has changes (untracked files count; ignored ones
    /// do not), and the branch name.
    pub fn head(&self) -> Result<HeadState, BaselineError> {
        let head = self.repo.head()?;
        let commit = head.peel_to_commit()?.id().to_string();
        let branch = head
            .is_branch()
            .then(|| head.shorthand().ok().map(str::to_owned))
            .flatten();
        let mut options = StatusOptions::new();
        options
            .include_untracked(true)
            .include_ignored(false)
            .exclude_submodules(true);
        let dirty = !self.repo.statuses(Some(&mut options))?.is_empty();
        Ok(HeadState {
            commit,
            dirty,
            branch,
        })
    }

    /// The full sha of a revision, or an error saying it does not exist.
    pub fn resolve(&self, rev: &str) -> Result<String, BaselineError> {
        self.repo
            .revparse_single(rev)
            .and_then(|object| object.peel_to_commit())
            .map(|commit| commit.id().to_string())
            .map_err(|e| BaselineError::UnknownRevision {
                rev: rev.to_owned(),
                detail: e.message().to_owned(),
            })
    }

    /// The default baseline: the merge-base of HEAD with the target branch; when HEAD is on
    /// the target branch, HEAD itself for a dirty tree (measuring the uncommitted change) or
    /// its first parent for a clean one. `None` when there is no such commit; an error when
    /// the target branch is neither local nor `origin`'s.
    pub fn default_base(
        &self,
        head: &HeadState,
        target_branch: &str,
    ) -> Result<Option<BaseChoice>, BaselineError> {
        let head_oid = Oid::from_str(&head.commit)?;
        let target = [
            format!("refs/heads/{target_branch}"),
            format!("refs/remotes/origin/{target_branch}"),
        ]
        .into_iter()
        .find_map(|name| {
            self.repo
                .find_reference(&name)
                .ok()
                .and_then(|r| r.peel_to_commit().ok())
                .map(|c| (name, c.id()))
        });
        let on_target = match &target {
            Some((name, target_oid)) => {
                let merge_base = self.repo.merge_base(head_oid, *target_oid)?;
                if merge_base != head_oid {
                    return Ok(Some(BaseChoice {
                        commit: merge_base.to_string(),
                        how_chosen: format!("merge-base of HEAD and {name}"),
                    }));
                }
                format!("HEAD is on {name}")
            }
            None => {
                // A misspelled or unfetched target branch must not silently turn the base into
                // HEAD's first parent: that is the wrong baseline for a PR of several commits.
                return Err(BaselineError::TargetBranchNotFound {
                    branch: target_branch.to_owned(),
                });
            }
        };
        if head.dirty {
            return Ok(Some(BaseChoice {
                commit: head.commit.clone(),
                how_chosen: format!("{on_target}; the work tree is dirty, so HEAD is the base"),
            }));
        }
        let commit = self.repo.find_commit(head_oid)?;
        Ok(commit.parent_ids().next().map(|parent| BaseChoice {
            commit: parent.to_string(),
            how_chosen: format!("{on_target}; its first parent is the base"),
        }))
    }

    /// Who accepts a regression: `named` (`--accepted-by`) when given, else git's
    /// `user.name`, else `unknown`. Never an environment variable of the CI (on a push, the
    /// CI's actor is the pusher, not whoever accepted).
    pub fn acceptor(&self, named: Option<&str>) -> String {
        named
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                self.repo
                    .config()
                    .and_then(|config| config.get_string("user.name"))
                    .ok()
            })
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// The files (paths from the repository's root) that differ between `commit` and the work
    /// tree, uncommitted changes included: what a change measured against `commit` touched.
    pub fn changed_files(&self, commit: &str) -> Result<Vec<String>, BaselineError> {
        let tree = self.repo.find_commit(Oid::from_str(commit)?)?.tree()?;
        let diff = self
            .repo
            .diff_tree_to_workdir_with_index(Some(&tree), None)?;
        let mut files: Vec<String> = diff
            .deltas()
            .flat_map(|delta| [delta.old_file().path(), delta.new_file().path()])
            .flatten()
            .filter_map(|path| path.to_str().map(str::to_owned))
            .collect();
        files.sort_unstable();
        files.dedup();
        Ok(files)
    }

    /// The subject line of `commit`'s message.
    pub fn subject(&self, commit: &str) -> Result<String, BaselineError> {
        let commit = self.repo.find_commit(Oid::from_str(commit)?)?;
        Ok(commit.summary()?.map(str::to_owned).unwrap_or_default())
    }

    /// Up to `count` first-parent ancestors of `commit`, nearest first (its parent, then the
    /// parent's first parent, ...).
    pub fn first_parent_ancestors(
        &self,
        commit: &str,
        count: u32,
    ) -> Result<Vec<String>, BaselineError> {
        let mut ancestors = Vec::new();
        let mut current = self.repo.find_commit(Oid::from_str(commit)?)?;
        while ancestors.len() < count as usize {
            let Some(parent) = current.parents().next() else {
                break;
            };
            ancestors.push(parent.id().to_string());
            current = parent;
        }
        Ok(ancestors)
    }

    /// Checks `commit` out (detached) at `dir` with `git worktree add`, replacing whatever a
    /// previous, interrupted run left there. The worktree is removed when the guard drops.
    pub fn add_worktree(&self, commit: &str, dir: &Path) -> Result<Worktree, BaselineError> {
        let repo_root = self.root().to_path_buf();
        let worktree = Worktree {
            repo_root,
            dir: dir.to_path_buf(),
        };
        worktree.remove();
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BaselineError::GitProgram {
                args: "worktree add".to_owned(),
                detail: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        run_git(
            &worktree.repo_root,
            &[
                "worktree",
                "add",
                "--detach",
                "--force",
                &dir.to_string_lossy(),
                commit,
            ],
        )?;
        Ok(worktree)
    }
}

/// A checked-out worktree of a base revision; removed on drop.
#[derive(Debug)]
pub struct Worktree {
    repo_root: PathBuf,
    dir: PathBuf,
}

impl Worktree {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn remove(&self) {
        if self.dir.exists() {
            let _ = run_git(
                &self.repo_root,
                &["worktree", "remove", "--force", &self.dir.to_string_lossy()],
            );
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        let _ = run_git(&self.repo_root, &["worktree", "prune"]);
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        self.remove();
    }
}

fn run_git(cwd: &Path, args: &[&str]) -> Result<(), BaselineError> {
    let output = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .output()
        .map_err(|e| BaselineError::GitProgram {
            args: args.join(" "),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BaselineError::GitProgram {
            args: args.join(" "),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// The stored record of a clean commit in a runs directory, if there is one. A corrupt or
/// newer-version file is an error naming it, never skipped silently.
pub fn stored_record(
    runs_dir: &Path,
    commit: &str,
) -> Result<Option<(PathBuf, RunRecord)>, BaselineError> {
    let path = runs_dir.join(record::record_file_name(commit, false));
    Ok(record::read_record(&path)?.map(|record| (path, record)))
}
