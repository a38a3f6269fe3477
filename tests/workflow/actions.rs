//! The `uses:` actions of the workflows, emulated with their real semantics (read in their
//! sources, v4):
//! - `actions/checkout`: `git init` of the workspace, `origin` the bare repository, then a
//!   fetch: with `fetch-depth: 0` every branch as a *remote-tracking* ref
//!   (`+refs/heads/*:refs/remotes/origin/*`) and every tag, plus the event's commit; otherwise
//!   only the event's commit at that depth. A branch event checks out a local branch of that
//!   name (`checkout -B main refs/remotes/origin/main`), a pull request `refs/remotes/pull/N/merge`
//!   detached. `persist-credentials: false` leaves no credentials (there are none to leave).
//! - `actions/cache`: restore at the step (the exact key, else the newest entry whose key starts
//!   with a restore key; the current ref's scope, then the base branch's, then the default
//!   branch's; only entries saved for the same paths); save in the job's post phase when the job
//!   succeeded and the key was not an exact hit, unless that scope holds the key already. An
//!   paths of `!` lines are left out of what is saved. An
//!   entry is never changed once saved: restores copy out of it (`cp -a --reflink=auto`), and
//!   a save moves the paths in (nothing of the job runs after its post phase, and the next job
//!   starts from a cleared workspace and a new home).
//! - `actions/cache/restore`: the restore of `actions/cache` alone (no post phase).
//! - `actions/upload-artifact`: files under the paths (hidden files left out), relative to the
//!   paths' least common ancestor, per workflow run and name; `if-no-files-found`.
//! - `actions/download-artifact`: an artifact of this run or of `run-id` (with `github-token`),
//!   by name, into `path` (a missing one fails the step); without a name, every artifact of the
//!   run whose name matches `pattern` (a glob of `*`s; none matching is no error), each into
//!   `path/<name>/`, or all into `path` with `merge-multiple: true`.
//!
//! Any other action, or an input not listed here, panics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

/// What an action sees of its job.
pub struct JobView<'a> {
    pub workspace: &'a Path,
    pub home: &'a Path,
    pub origin: &'a Path,
    /// `GITHUB_REF` and `GITHUB_SHA`.
    pub git_ref: &'a str,
    pub sha: &'a str,
    /// Cache scopes after the job's own ref (a pull request's base branch, the default branch).
    pub fallback_scopes: Vec<String>,
    pub run_id: u64,
}

/// The runner's caches and artifacts, kept across workflow runs.
pub struct Stores {
    pub root: PathBuf,
    caches: Vec<CacheEntry>,
    /// Milliseconds spent copying caches out and moving them in, with what.
    pub cache_costs: Vec<String>,
}

struct CacheEntry {
    key: String,
    version: String,
    scope: String,
    dir: PathBuf,
    /// Which of the listed paths the entry holds.
    held: Vec<bool>,
}

/// Work an action leaves for the job's post phase.
pub enum Post {
    SaveCache {
        key: String,
        version: String,
        scope: String,
        paths: Vec<PathBuf>,
        /// Parts of `paths` left out.
        excluded: Vec<PathBuf>,
    },
}

/// A step's outputs, by name.
pub type Outputs = Vec<(String, String)>;

/// What a step of an action ended with: its outputs, or why it failed.
pub type Outcome = Result<Outputs, String>;

impl Stores {
    pub fn new(root: PathBuf) -> Self {
        std::fs::create_dir_all(root.join("caches")).unwrap();
        std::fs::create_dir_all(root.join("artifacts")).unwrap();
        Self {
            root,
            caches: Vec::new(),
            cache_costs: Vec::new(),
        }
    }

    /// The names of the artifacts of workflow run `run_id`.
    pub fn artifacts(&self, run_id: u64) -> Vec<String> {
        let dir = self.root.join("artifacts").join(run_id.to_string());
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Leaves an entry in the cache as an earlier run would have: `key` in `scope`, for a
    /// cache step listing `listed` (its `path:` lines), holding for each listed path named in
    /// `contents` the directory given there (moved in, as a save does). Restores find it as
    /// they find any entry: by the exact key, else by a restore key's prefix.
    pub fn seed_cache(
        &mut self,
        listed: &[String],
        key: &str,
        scope: &str,
        contents: Vec<(&str, PathBuf)>,
    ) {
        let dir = self.root.join("caches").join(self.caches.len().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let mut held = Vec::new();
        let included = listed.iter().filter(|path| !path.starts_with('!'));
        for (index, path) in included.enumerate() {
            let source = contents.iter().find(|(name, _)| name == path);
            if let Some((_, source)) = source {
                std::fs::rename(source, dir.join(index.to_string()))
                    .unwrap_or_else(|e| panic!("moving {} into the cache: {e}", source.display()));
            }
            held.push(source.is_some());
        }
        for (name, _) in &contents {
            assert!(
                listed.iter().any(|path| path == name),
                "{name} is not among the cache's paths {listed:?}"
            );
        }
        self.caches.push(CacheEntry {
            key: key.to_owned(),
            version: cache_version(listed),
            scope: scope.to_owned(),
            dir,
            held,
        });
    }

    /// The directory of an artifact.
    pub fn artifact_dir(&self, run_id: u64, name: &str) -> PathBuf {
        self.root
            .join("artifacts")
            .join(run_id.to_string())
            .join(name)
    }
}

/// Runs action `action` with inputs `with`; `post` receives work for the post phase.
pub fn run(
    action: &str,
    with: &[(String, String)],
    job: &JobView,
    stores: &mut Stores,
    post: &mut Vec<Post>,
    log: &mut String,
) -> Outcome {
    match action {
        "actions/checkout" => checkout(&Inputs::new(action, with), job, log),
        "actions/cache" => {
            restore_cache(&Inputs::new(action, with), job, stores, log).map(|(outputs, save)| {
                post.extend(save);
                outputs
            })
        }
        // The restore half alone: nothing is saved in the post phase.
        "actions/cache/restore" => {
            restore_cache(&Inputs::new(action, with), job, stores, log).map(|(outputs, _)| outputs)
        }
        "actions/upload-artifact" => upload_artifact(&Inputs::new(action, with), job, stores, log),
        "actions/download-artifact" => download_artifact(&Inputs::new(action, with), job, stores),
        other => panic!("the action {other} is not emulated"),
    }
}

/// Runs the post phase's work of a job (in reverse order of the steps), given whether the
/// job succeeded.
pub fn run_post(post: Vec<Post>, job_succeeded: bool, stores: &mut Stores, log: &mut String) {
    for work in post.into_iter().rev() {
        match work {
            Post::SaveCache {
                key,
                version,
                scope,
                paths,
                excluded,
            } => {
                if !job_succeeded {
                    log.push_str(&format!("cache: not saving {key}: the job failed\n"));
                    continue;
                }
                if stores
                    .caches
                    .iter()
                    .any(|e| e.key == key && e.version == version && e.scope == scope)
                {
                    log.push_str(&format!("cache: {key} exists in {scope}; not saved\n"));
                    continue;
                }
                let started = Instant::now();
                let dir = stores
                    .root
                    .join("caches")
                    .join(stores.caches.len().to_string());
                std::fs::create_dir_all(&dir).unwrap();
                let mut held = Vec::new();
                for (index, path) in paths.iter().enumerate() {
                    let exists = path.symlink_metadata().is_ok();
                    if exists {
                        let into = dir.join(index.to_string());
                        std::fs::rename(path, &into).unwrap_or_else(|e| {
                            panic!("moving {} into the cache: {e}", path.display())
                        });
                        for left_out in &excluded {
                            if let Ok(inside) = left_out.strip_prefix(path) {
                                let _ = std::fs::remove_dir_all(into.join(inside));
                            }
                        }
                    }
                    held.push(exists);
                }
                let cost = format!(
                    "saved {key} ({scope}) in {} ms",
                    started.elapsed().as_millis()
                );
                log.push_str(&format!("cache: {cost}\n"));
                stores.cache_costs.push(cost);
                stores.caches.push(CacheEntry {
                    key,
                    version,
                    scope,
                    dir,
                    held,
                });
            }
        }
    }
}

/// An action's inputs; asking for one that was not given is fine, giving one that is never
/// asked for is caught by [`Inputs::new`].
struct Inputs {
    action: String,
    values: Vec<(String, String)>,
}

impl Inputs {
    fn new(action: &str, with: &[(String, String)]) -> Self {
        let known: &[&str] = match action {
            "actions/checkout" => &["fetch-depth", "persist-credentials"],
            "actions/cache" | "actions/cache/restore" => &["path", "key", "restore-keys"],
            "actions/upload-artifact" => &["name", "path", "if-no-files-found", "retention-days"],
            "actions/download-artifact" => &[
                "name",
                "pattern",
                "merge-multiple",
                "path",
                "run-id",
                "github-token",
            ],
            _ => &[],
        };
        for (name, _) in with {
            assert!(
                known.contains(&name.as_str()),
                "{action}: the input `{name}` is not emulated"
            );
        }
        Self {
            action: action.to_owned(),
            values: with.to_vec(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn required(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("{}: the input `{name}` is required", self.action))
    }

    fn lines(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Runs git; Err with its output when it fails.
fn git(dir: &Path, args: &[&str], log: &mut String) -> Result<String, String> {
    log.push_str(&format!("[command]git {}\n", args.join(" ")));
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git");
    let stderr = String::from_utf8_lossy(&output.stderr);
    log.push_str(&stderr);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!("git {args:?} failed: {stderr}"))
    }
}

fn checkout(inputs: &Inputs, job: &JobView, log: &mut String) -> Outcome {
    let depth: u32 = inputs
        .get("fetch-depth")
        .unwrap_or("1")
        .parse()
        .expect("fetch-depth is a number");
    match inputs.get("persist-credentials").unwrap_or("true") {
        "false" => {}
        other => panic!("actions/checkout: persist-credentials {other:?} is not emulated"),
    }
    let workspace = job.workspace;
    if workspace.exists() {
        std::fs::remove_dir_all(workspace).unwrap();
    }
    std::fs::create_dir_all(workspace).unwrap();
    let url = format!("file://{}", job.origin.display());
    git(workspace, &["init", "--quiet"], log)?;
    git(workspace, &["remote", "add", "origin", &url], log)?;
    git(workspace, &["config", "--local", "gc.auto", "0"], log)?;
    // Where the event's commit goes, and what is checked out.
    let (tracking, branch) = if let Some(branch) = job.git_ref.strip_prefix("refs/heads/") {
        (format!("refs/remotes/origin/{branch}"), Some(branch))
    } else if let Some(pull) = job.git_ref.strip_prefix("refs/pull/") {
        (format!("refs/remotes/pull/{pull}"), None)
    } else {
        panic!("actions/checkout: the ref {} is not emulated", job.git_ref)
    };
    let targeted = format!("+{}:{tracking}", job.sha);
    let fetch = |refspecs: &[&str], extra: &[&str], log: &mut String| {
        let mut args = vec![
            "-c",
            "protocol.version=2",
            "fetch",
            "--prune",
            "--no-recurse-submodules",
        ];
        args.extend_from_slice(extra);
        args.push("origin");
        args.extend_from_slice(refspecs);
        git(workspace, &args, log)
    };
    if depth == 0 {
        let mut refspecs = vec![
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
        ];
        if branch.is_none() {
            refspecs.push(&targeted);
        }
        fetch(&refspecs, &[], log)?;
        // The branch may have moved on since the event: fetch the event's commit itself.
        let at = git(
            workspace,
            &["rev-parse", "--verify", "--quiet", &tracking],
            log,
        );
        if at.as_deref() != Ok(job.sha) {
            fetch(&[&targeted], &[], log)?;
        }
    } else {
        let depth = format!("--depth={depth}");
        fetch(&[&targeted], &["--no-tags", &depth], log)?;
    }
    match branch {
        Some(branch) => git(
            workspace,
            &["checkout", "--quiet", "--force", "-B", branch, &tracking],
            log,
        )?,
        None => git(
            workspace,
            &["checkout", "--quiet", "--force", &tracking],
            log,
        )?,
    };
    let head = git(workspace, &["rev-parse", "HEAD"], log)?;
    assert_eq!(head, job.sha, "actions/checkout checked out another commit");
    Ok(Vec::new())
}

/// `~` and relative paths of a cache or artifact input.
fn resolve(path: &str, job: &JobView) -> PathBuf {
    if path.contains(['*', '?', '[', '!']) {
        panic!("glob patterns in paths are not emulated: {path}")
    }
    match path.strip_prefix("~/") {
        Some(rest) => job.home.join(rest),
        None => job.workspace.join(path.trim_end_matches('/')),
    }
}

/// Restores a cache; with it, the save its post phase makes unless the key was an exact hit.
fn restore_cache(
    inputs: &Inputs,
    job: &JobView,
    stores: &mut Stores,
    log: &mut String,
) -> Result<(Outputs, Option<Post>), String> {
    let listed = inputs.lines("path");
    let key = inputs.required("key").to_owned();
    let restore_keys = inputs.lines("restore-keys");
    let version = cache_version(&listed);
    // `!path` lines leave a part of a listed path out of what is saved.
    let (excluded, included): (Vec<&String>, Vec<&String>) =
        listed.iter().partition(|path| path.starts_with('!'));
    let paths: Vec<PathBuf> = included.iter().map(|path| resolve(path, job)).collect();
    let excluded: Vec<PathBuf> = excluded
        .iter()
        .map(|path| resolve(&path[1..], job))
        .collect();
    let mut scopes = vec![job.git_ref.to_owned()];
    for scope in &job.fallback_scopes {
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    let mut found = None;
    'search: for (index, wanted) in std::iter::once(&key).chain(&restore_keys).enumerate() {
        for scope in &scopes {
            let candidate = stores.caches.iter().enumerate().rev().find(|(_, entry)| {
                entry.version == version
                    && &entry.scope == scope
                    && if index == 0 {
                        entry.key == *wanted
                    } else {
                        entry.key.starts_with(wanted.as_str())
                    }
            });
            if let Some((at, _)) = candidate {
                found = Some(at);
                break 'search;
            }
        }
    }
    let mut exact = false;
    if let Some(at) = found {
        let entry = &stores.caches[at];
        exact = entry.key == key;
        let started = Instant::now();
        for (index, path) in paths.iter().enumerate() {
            if !entry.held[index] {
                continue;
            }
            let from = entry.dir.join(index.to_string());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if path.exists() && from.is_dir() {
                // Extracting over an existing directory merges into it.
                copy(&from.join("."), path);
            } else {
                copy(&from, path);
            }
        }
        let cost = format!(
            "restored {} ({}) in {} ms",
            entry.key,
            entry.scope,
            started.elapsed().as_millis()
        );
        log.push_str(&format!("cache: {cost}\n"));
        stores.cache_costs.push(cost);
    } else {
        log.push_str(&format!("cache: no cache found for {key}\n"));
    }
    let save = (!exact).then(|| Post::SaveCache {
        key,
        version,
        scope: job.git_ref.to_owned(),
        paths,
        excluded,
    });
    Ok((vec![("cache-hit".to_owned(), exact.to_string())], save))
}

/// What tells caches of different paths apart (the toolkit's `getCacheVersion`: the paths,
/// the compression method and a version of the format).
fn cache_version(listed: &[String]) -> String {
    let digest = Sha256::digest(format!("{}|gzip|1.0", listed.join("|")).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn copy(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp -a {} {} failed",
        from.display(),
        to.display()
    );
}

/// Files under `path` (a file or a directory), hidden ones left out, as paths.
fn files_under(path: &Path, into: &mut Vec<PathBuf>) {
    let hidden = path
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'));
    if hidden {
        return;
    }
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            files_under(&entry, into);
        }
    } else if path.is_file() {
        into.push(path.to_path_buf());
    }
}

fn upload_artifact(
    inputs: &Inputs,
    job: &JobView,
    stores: &mut Stores,
    log: &mut String,
) -> Outcome {
    let name = inputs.get("name").unwrap_or("artifact").to_owned();
    let searched: Vec<PathBuf> = inputs
        .lines("path")
        .iter()
        .map(|path| resolve(path, job))
        .collect();
    assert!(!searched.is_empty(), "upload-artifact: no path");
    let mut files = Vec::new();
    for path in &searched {
        files_under(path, &mut files);
    }
    if files.is_empty() {
        return match inputs.get("if-no-files-found").unwrap_or("warn") {
            "ignore" => Ok(Vec::new()),
            "warn" => {
                log.push_str(
                    "Warning: No files were found with the provided path. No artifacts will be uploaded.\n",
                );
                Ok(Vec::new())
            }
            "error" => Err(format!("No files were found for artifact {name}")),
            other => panic!("upload-artifact: if-no-files-found {other:?}"),
        };
    }
    // The root: the least common ancestor of the searched paths (a directory's own path, a
    // file's parent).
    let roots: Vec<PathBuf> = searched
        .iter()
        .map(|path| {
            if path.is_dir() {
                path.clone()
            } else {
                path.parent().unwrap().to_path_buf()
            }
        })
        .collect();
    let mut root = roots[0].clone();
    while !roots.iter().all(|r| r.starts_with(&root)) {
        root = root.parent().unwrap().to_path_buf();
    }
    let dir = stores.artifact_dir(job.run_id, &name);
    if dir.exists() {
        return Err(format!(
            "Failed to CreateArtifact: an artifact with this name already exists on the workflow run: {name}"
        ));
    }
    for file in &files {
        let to = dir.join(file.strip_prefix(&root).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(file, &to).unwrap();
    }
    log.push_str(&format!(
        "Artifact {name} has been successfully uploaded ({} files)\n",
        files.len()
    ));
    Ok(vec![("artifact-id".to_owned(), job.run_id.to_string())])
}

fn download_artifact(inputs: &Inputs, job: &JobView, stores: &mut Stores) -> Outcome {
    let run_id = match inputs.get("run-id") {
        Some(id) => {
            assert!(
                inputs.get("github-token").is_some_and(|t| !t.is_empty()),
                "download-artifact: run-id needs github-token"
            );
            id.parse::<u64>()
                .unwrap_or_else(|_| panic!("download-artifact: run-id {id:?} is not a number"))
        }
        None => job.run_id,
    };
    let to = resolve(inputs.get("path").unwrap_or("."), job);
    if let Some(name) = inputs.get("name").filter(|name| !name.is_empty()) {
        let from = stores.artifact_dir(run_id, name);
        if !from.is_dir() {
            return Err(format!(
                "Unable to download artifact(s): Artifact not found for name: {name}"
            ));
        }
        std::fs::create_dir_all(&to).unwrap();
        copy(&from.join("."), &to);
        return Ok(vec![("download-path".to_owned(), to.display().to_string())]);
    }
    let merge = match inputs.get("merge-multiple").unwrap_or("false") {
        "true" => true,
        "false" => false,
        other => panic!("download-artifact: merge-multiple {other:?}"),
    };
    let pattern = inputs.get("pattern").filter(|pattern| !pattern.is_empty());
    std::fs::create_dir_all(&to).unwrap();
    for name in stores.artifacts(run_id) {
        if pattern.is_some_and(|pattern| !glob_matches(pattern, &name)) {
            continue;
        }
        let into = if merge { to.clone() } else { to.join(&name) };
        std::fs::create_dir_all(&into).unwrap();
        copy(&stores.artifact_dir(run_id, &name).join("."), &into);
    }
    Ok(vec![("download-path".to_owned(), to.display().to_string())])
}

/// Whether `name` matches `pattern`, a glob whose only special character is `*` (any run of
/// characters); others (`?`, `[`, `{`, `!`) are not emulated.
fn glob_matches(pattern: &str, name: &str) -> bool {
    assert!(
        !pattern.contains(['?', '[', '{', '!']),
        "download-artifact: the pattern {pattern:?} uses more than `*`"
    );
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split gives one part at least");
    let Some(mut remaining) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn artifact_patterns_match_as_globs_of_stars() {
        assert!(glob_matches("perf-shard-*", "perf-shard-1"));
        assert!(glob_matches("perf-shard-*", "perf-shard-"));
        assert!(!glob_matches("perf-shard-*", "perf-report"));
        assert!(glob_matches("*-base-*", "perf-base-2"));
        assert!(!glob_matches("*-base-*", "perf-base"));
        assert!(glob_matches("perf-report", "perf-report"));
        assert!(!glob_matches("perf-report", "perf-report-2"));
        assert!(glob_matches("a*a", "aa"));
        assert!(!glob_matches("a*a", "a"));
    }
}
