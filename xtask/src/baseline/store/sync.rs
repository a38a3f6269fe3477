//! Fetch and push of the baseline branch: remotes by name, path or URL; downloads and pushes
//! through the `git` program (so CI's credentials apply), a local repository by a
//! compare-and-swap of its ref; a push that lost a race fetches, merges (`merge_files`: a union
//! where the remote wins a conflict) and tries again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::BlockingRetryable;
use git2::{ErrorCode, Oid, Remote};

use super::*;

impl BaselineStore {
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
pub(super) struct MergedFiles {
    pub(super) files: Files,
    pub(super) replaced_by_remote: Vec<String>,
}

/// Merges the files of two commits of the branch given their merge base's (empty when they
/// share no history): every file either side added is kept (a union); a file only one side
/// changed or removed since the base takes that side's change, so a prune stays pruned; a file
/// both sides changed differently is the remote's (`theirs`), and one side removed while the
/// other replaced it is kept (the newer measurement).
pub(super) fn merge_files(base: &Files, ours: &Files, theirs: &Files) -> MergedFiles {
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
