//! Building one checkout's binaries in a cargo target directory that other checkouts share,
//! without ever running another checkout's binaries.
//!
//! Cargo names a workspace crate's outputs the same in every checkout of the workspace (its
//! hashes use paths relative to the workspace root), and it decides they are fresh by
//! comparing the sources' modification times with the last build's. So two checkouts building
//! into one target directory (HEAD's work tree and a copy of it, or HEAD's harness run and a
//! test's) can silently run each other's binaries: a checkout whose files are older than the
//! other's build reuses that build. This module makes that impossible:
//! - the target directory remembers what sources its workspace crates were last built from (a
//!   hash of everything cargo builds them from, or that a build there did not finish) and in
//!   which checkout; a checkout with other sources in another place first has cargo clean those
//!   crates, so they are rebuilt from its own sources (in the same place cargo's comparison of
//!   modification times is right, so it only rebuilds what changed);
//! - a lock file in the target directory is held exclusively while a checkout is built and
//!   shared while its binaries are used, so no other run rebuilds them under a measurement,
//!   and two runs of the same sources still measure side by side.
//!
//! It must never clean dependencies (they do not depend on the checkout, and a full rebuild
//! takes many minutes), and a run must never hold it for two checkouts at once.

use std::fs::{File, TryLockError};
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::SuiteError;

/// The workspace's own packages: the crates whose outputs differ between checkouts.
const WORKSPACE_PACKAGES: [&str; 3] = ["bench-suite", "xtask", "perf-tests"];

/// What cargo builds the workspace's crates from, relative to the checkout: manifests, the
/// lock file, cargo's configuration and the packages' directories.
const BUILD_INPUTS: [&str; 6] = [
    "Cargo.toml",
    "Cargo.lock",
    ".cargo",
    "bench-suite",
    "xtask",
    "tests",
];

/// How often a run waiting for the lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(250);

/// A checkout's binaries in a target directory, usable while this value lives: no other run
/// can rebuild them until it is dropped.
#[derive(Debug)]
pub struct BuiltCheckout {
    _shared_lock: File,
}

/// Builds the checkout in `dir` into `target_dir` with `build` (which runs cargo), cleaning
/// the workspace's crates first when the last build came from other sources in another place,
/// and returns the shared lock that keeps the binaries as built. Runs of the same sources
/// share the lock and never wait for each other; other sources wait for the directory to be
/// free. `tell` is told once when the run waits, and when it reuses another place's build.
///
/// A build from the same place needs no cleaning: there cargo's own comparison of
/// modification times is right (an edit makes a file newer than the last build).
///
/// A `harness_worktree` (a base's worktree, made for this run) whose sources are exactly
/// those the outputs were last built from, in another place, has its build inputs' times
/// set back ([`backdate`]): its files are all newer than that build only because they were
/// just checked out, and cargo would otherwise rebuild every workspace crate (about a minute)
/// for the same bytes. Another shard of the run, or the next test comparing with the same
/// base commit, then reuses the outputs. Never done to a tree someone edits.
pub async fn build_checkout<F>(
    dir: &Path,
    target_dir: &Path,
    harness_worktree: bool,
    tell: impl Fn(&str),
    build: impl Fn() -> F,
) -> Result<BuiltCheckout, SuiteError>
where
    F: Future<Output = Result<(), SuiteError>>,
{
    let built_from = BuiltFrom {
        sources: sources_digest(dir)?,
        place: std::path::absolute(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
    };
    let lock_path = target_dir.join("perf-build.lock");
    let marker_path = target_dir.join("perf-built-from");
    std::fs::create_dir_all(target_dir).map_err(|e| io_error("create", target_dir, e))?;
    let told = std::cell::Cell::new(false);
    let wait = async || {
        if !told.replace(true) {
            tell(&format!(
                "waiting for another perf run that builds in or measures from {} (lock {})",
                target_dir.display(),
                lock_path.display()
            ));
        }
        tokio::time::sleep(LOCK_POLL).await;
    };
    let mut built_here = false;
    loop {
        let shared = open_lock(&lock_path)?;
        while !try_lock(&shared, &lock_path, Exclusivity::Shared)? {
            wait().await;
        }
        let last = BuiltFrom::read(&marker_path);
        if let Some(last) = last.filter(|last| last.sources == built_from.sources) {
            if !built_here {
                if harness_worktree && last.place != built_from.place {
                    backdate(dir)?;
                    tell(&format!(
                        "the same sources were last built in {} (from {}): reusing that build",
                        target_dir.display(),
                        last.place
                    ));
                }
                // Cargo's check (a rebuild if outputs were removed) of sources identical to
                // what other holders of the shared lock run: nothing they use can change.
                build().await?;
            }
            return Ok(BuiltCheckout {
                _shared_lock: shared,
            });
        }
        drop(shared);

        let exclusive = open_lock(&lock_path)?;
        while !try_lock(&exclusive, &lock_path, Exclusivity::Exclusive)? {
            wait().await;
        }
        let last = BuiltFrom::read(&marker_path);
        if last.as_ref().map(|last| &last.sources) != Some(&built_from.sources) {
            if needs_cleaning(last.as_ref(), &built_from.place) {
                clean_workspace_packages(dir, target_dir).await?;
            }
            // Until the build succeeds the marker names this place and no sources: a failed
            // build is never attributed to any sources, and the next build from this place
            // (the failure fixed) needs no cleaning, only what cargo finds changed.
            BuiltFrom {
                sources: UNFINISHED.to_owned(),
                place: built_from.place.clone(),
            }
            .write(&marker_path)?;
            build().await?;
            built_from.write(&marker_path)?;
            built_here = true;
        }
        // Dropping `exclusive` releases the lock; the loop then takes it shared.
    }
}

/// Starts `into` (a target directory with no release build yet, such as the bases') as a
/// copy of `from`'s release build, so that a base's first build compiles only the
/// workspace's crates and reuses the dependencies HEAD compiled (they do not depend on the
/// checkout). The copy keeps modification times (cargo's freshness checks compare them) and
/// is made under `from`'s shared lock, so no run rebuilds what is copied meanwhile; it carries
/// no `perf-built-from` marker, so [`build_checkout`] cleans the workspace's crates in it and
/// builds them from the base's own sources. Returns whether it copied: nothing is done when
/// `into` has a release build already or `from` has none. An interrupted copy leaves only a
/// `release.partial` directory, removed by the next call.
pub async fn seed_from(
    from: &Path,
    into: &Path,
    waiting: impl Fn(&str),
) -> Result<bool, SuiteError> {
    let source = from.join("release");
    let destination = into.join("release");
    if destination.exists() || !source.is_dir() {
        return Ok(false);
    }
    std::fs::create_dir_all(into).map_err(|e| io_error("create", into, e))?;
    let lock_path = from.join("perf-build.lock");
    let shared = open_lock(&lock_path)?;
    let mut told = false;
    while !try_lock(&shared, &lock_path, Exclusivity::Shared)? {
        if !std::mem::replace(&mut told, true) {
            waiting(&format!(
                "waiting for another perf run that builds in {} (lock {})",
                from.display(),
                lock_path.display()
            ));
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
    let partial = into.join("release.partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io_error("remove", &partial, e))?;
    }
    // In a process group of its own, killed with it if the run is interrupted meanwhile.
    let mut copy = super::child::command("cp", from);
    copy.args(["-a", "--reflink=auto"])
        .arg(&source)
        .arg(&partial);
    let output = super::child::output(copy)
        .await
        .map_err(|e| io_error("copy (cp)", &source, e))?;
    drop(shared);
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(SuiteError::Output {
            suite: "build",
            detail: format!(
                "copying {} to {} failed: {}",
                source.display(),
                partial.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    // Incremental state belongs to the workspace's crates, which are rebuilt anyway.
    let _ = std::fs::remove_dir_all(partial.join("incremental"));
    std::fs::rename(&partial, &destination).map_err(|e| io_error("rename", &partial, e))?;
    Ok(true)
}

/// The time [`backdate`] gives a checkout's build inputs: long before any build.
const BACKDATED: Duration = Duration::from_secs(946_684_800); // 2000-01-01, after the epoch

/// Sets the modification time of every build input of the checkout in `dir` (the files
/// [`sources_digest`] reads, and their directories: a build script's `rerun-if-changed` of a
/// directory, as `bench-suite`'s of its migrations, compares the directory's own time) to
/// [`BACKDATED`], so that cargo finds the outputs of an earlier build of the same bytes fresh.
/// Only for sources whose digest equals that build's: cargo decides freshness of workspace
/// crates by these times alone.
fn backdate(dir: &Path) -> Result<(), SuiteError> {
    let files = build_inputs(dir)?;
    let mut directories: Vec<PathBuf> = files
        .iter()
        .flat_map(|file| {
            file.ancestors()
                .skip(1)
                .take_while(|ancestor| *ancestor != dir)
                .map(Path::to_path_buf)
        })
        .collect();
    directories.sort();
    directories.dedup();
    let time = std::time::SystemTime::UNIX_EPOCH + BACKDATED;
    for path in files.iter().chain(&directories) {
        File::open(path)
            .and_then(|opened| opened.set_modified(time))
            .map_err(|e| io_error("set the modification time of", path, e))?;
    }
    Ok(())
}

/// Whether the workspace's crates must be cleaned before a build from `place`: unless the last
/// build (finished or not) was made there, where cargo's comparison of modification times is
/// right. Without a marker nothing is known of what built the outputs.
fn needs_cleaning(last: Option<&BuiltFrom>, place: &str) -> bool {
    last.is_none_or(|last| last.place != place)
}

/// The first line of `perf-built-from` while a build runs, and after one that failed.
const UNFINISHED: &str = "unfinished";

/// What the workspace's crates in a target directory were last built from: the sources'
/// digest (or [`UNFINISHED`]) and the checkout's absolute path, one per line of
/// `perf-built-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BuiltFrom {
    sources: String,
    place: String,
}

impl BuiltFrom {
    fn read(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        Some(Self {
            sources: lines.next()?.to_owned(),
            place: lines.next()?.to_owned(),
        })
    }

    fn write(&self, path: &Path) -> Result<(), SuiteError> {
        let text = format!("{}\n{}\n", self.sources, self.place);
        crate::record::write_atomically(path, text.as_bytes()).map_err(|e| SuiteError::Output {
            suite: "build",
            detail: e.to_string(),
        })
    }
}

/// A hex SHA-256 over the relative path and contents of every file cargo builds the
/// workspace's crates from (anything under a `target` directory excluded), in path order.
pub fn sources_digest(dir: &Path) -> Result<String, SuiteError> {
    let mut files = build_inputs(dir)?;
    files.sort();
    let mut hasher = Sha256::new();
    let mut contents = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(dir).unwrap_or(file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        contents.clear();
        File::open(file)
            .and_then(|mut f| f.read_to_end(&mut contents))
            .map_err(|e| io_error("read", file, e))?;
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(&contents);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Every file of the checkout in `dir` that cargo builds the workspace's crates from
/// ([`BUILD_INPUTS`], anything under a `target` directory excluded), in no particular order.
fn build_inputs(dir: &Path) -> Result<Vec<PathBuf>, SuiteError> {
    let mut files = Vec::new();
    for input in BUILD_INPUTS {
        collect_files(&dir.join(input), &mut files)?;
    }
    Ok(files)
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), SuiteError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("read", path, e)),
    };
    if metadata.is_dir() {
        if path.file_name().is_some_and(|name| name == "target") {
            return Ok(());
        }
        let entries = std::fs::read_dir(path).map_err(|e| io_error("read", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("read", path, e))?;
            collect_files(&entry.path(), files)?;
        }
    } else if metadata.is_file() {
        files.push(path.to_path_buf());
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Exclusivity {
    Exclusive,
    Shared,
}

fn open_lock(path: &Path) -> Result<File, SuiteError> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io_error("open", path, e))
}

/// Takes the lock if it is free: `Ok(false)` when another run holds it.
fn try_lock(file: &File, path: &Path, exclusivity: Exclusivity) -> Result<bool, SuiteError> {
    let result = match exclusivity {
        Exclusivity::Exclusive => file.try_lock(),
        Exclusivity::Shared => file.try_lock_shared(),
    };
    match result {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(io_error("lock", path, e)),
    }
}

/// `cargo clean --release -p <each workspace package>`: the workspace's own outputs go,
/// dependencies stay. A package a revision does not have is skipped.
async fn clean_workspace_packages(dir: &Path, target_dir: &Path) -> Result<(), SuiteError> {
    let packages: Vec<&str> = WORKSPACE_PACKAGES
        .into_iter()
        .filter(|package| dir.join(package).join("Cargo.toml").is_file())
        .collect();
    if packages.is_empty() {
        // Without `--package`, cargo would clean the dependencies too.
        return Ok(());
    }
    let mut command = super::tool_in(super::cargo_program(), dir, target_dir);
    command.args(["clean", "--release"]);
    for package in packages {
        command.args(["--package", package]);
    }
    let output = command.output().await.map_err(|e| SuiteError::Output {
        suite: "build",
        detail: format!("cannot run cargo clean: {e}"),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SuiteError::Output {
            suite: "build",
            detail: format!(
                "`cargo clean --release` of the workspace's packages in {} failed: {}",
                target_dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> SuiteError {
    SuiteError::Output {
        suite: "build",
        detail: format!("cannot {what} {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, relative: &str, text: &str) {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn checkout(lib: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Cargo.toml", "[workspace]\n");
        write(dir.path(), "bench-suite/src/lib.rs", lib);
        write(dir.path(), "bench-suite/target/release/junk", "built");
        write(dir.path(), "README.md", "docs");
        dir
    }

    #[tokio::test]
    async fn a_bases_first_build_starts_from_heads_dependencies_and_no_marker() {
        let head = tempfile::tempdir().unwrap();
        let base = head.path().join("perf-base");
        assert!(
            !seed_from(head.path(), &base, |_| {}).await.unwrap(),
            "HEAD has no release build: nothing to copy"
        );
        write(head.path(), "release/deps/libdep-1.rlib", "compiled");
        write(head.path(), "release/.fingerprint/dep-1/lib-dep", "fp");
        write(head.path(), "release/incremental/bench_suite-1/s", "state");
        write(head.path(), "perf-built-from", "digest\nplace\n");
        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        File::options()
            .write(true)
            .open(head.path().join("release/deps/libdep-1.rlib"))
            .unwrap()
            .set_modified(old)
            .unwrap();

        assert!(seed_from(head.path(), &base, |_| {}).await.unwrap());
        let copied = base.join("release/deps/libdep-1.rlib");
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "compiled");
        assert_eq!(
            copied.metadata().unwrap().modified().unwrap(),
            old,
            "cargo compares modification times: the copy must keep them"
        );
        assert!(base.join("release/.fingerprint/dep-1/lib-dep").exists());
        assert!(!base.join("release/incremental").exists());
        assert!(
            !base.join("perf-built-from").exists(),
            "no marker: the build guard must rebuild the workspace's crates from the base's sources"
        );
        assert!(!base.join("release.partial").exists());

        // A base directory with a build of its own is never overwritten.
        write(head.path(), "release/deps/libdep-1.rlib", "rebuilt");
        assert!(!seed_from(head.path(), &base, |_| {}).await.unwrap());
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "compiled");
    }

    #[test]
    fn same_sources_in_two_places_have_one_digest() {
        let a = checkout("pub fn f() {}");
        let b = checkout("pub fn f() {}");
        assert_eq!(
            sources_digest(a.path()).unwrap(),
            sources_digest(b.path()).unwrap()
        );
    }

    #[test]
    fn a_changed_source_changes_the_digest_and_outputs_and_docs_do_not() {
        let a = checkout("pub fn f() {}");
        let before = sources_digest(a.path()).unwrap();
        write(a.path(), "bench-suite/target/release/junk", "rebuilt");
        write(a.path(), "README.md", "other docs");
        assert_eq!(sources_digest(a.path()).unwrap(), before);
        write(a.path(), "bench-suite/src/lib.rs", "pub fn f() { g() }");
        assert_ne!(sources_digest(a.path()).unwrap(), before);
    }

    #[test]
    fn a_file_moved_to_another_path_changes_the_digest() {
        let a = checkout("pub fn f() {}");
        let before = sources_digest(a.path()).unwrap();
        std::fs::rename(
            a.path().join("bench-suite/src/lib.rs"),
            a.path().join("bench-suite/src/main.rs"),
        )
        .unwrap();
        assert_ne!(sources_digest(a.path()).unwrap(), before);
    }

    #[tokio::test]
    async fn the_same_sources_never_wait_for_each_other() {
        let target = tempfile::tempdir().unwrap();
        let a = checkout("pub fn f() {}");
        let copy_of_a = checkout("pub fn f() {}");
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let build = || async {
            builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        };
        let first = build_checkout(a.path(), target.path(), false, |_| {}, build)
            .await
            .unwrap();
        let marker = BuiltFrom::read(&target.path().join("perf-built-from")).unwrap();
        assert_eq!(marker.sources, sources_digest(a.path()).unwrap());
        // The same sources elsewhere, while the first run still measures: cargo's own check
        // runs, no cleaning, no waiting.
        let told = std::sync::Mutex::new(Vec::<String>::new());
        let second = tokio::time::timeout(
            Duration::from_secs(5),
            build_checkout(
                copy_of_a.path(),
                target.path(),
                false,
                |message| told.lock().unwrap().push(message.to_owned()),
                build,
            ),
        )
        .await
        .expect("runs of the same sources do not wait for each other")
        .unwrap();
        assert_eq!(told.lock().unwrap().len(), 0);
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(
            BuiltFrom::read(&target.path().join("perf-built-from")).unwrap(),
            marker,
            "the marker still names the first build"
        );
        drop((first, second));
    }

    #[tokio::test]
    async fn a_failed_build_names_no_sources_and_its_place_builds_again_without_cleaning() {
        let target = tempfile::tempdir().unwrap();
        let marker = target.path().join("perf-built-from");
        let a = checkout("pub fn f() {}");
        drop(
            build_checkout(a.path(), target.path(), false, |_| {}, || async { Ok(()) })
                .await
                .unwrap(),
        );
        assert!(BuiltFrom::read(&marker).is_some());
        let b = checkout("pub fn f() { other() }");
        let failing = || async {
            Err(SuiteError::Output {
                suite: "build",
                detail: "compile error".to_owned(),
            })
        };
        assert!(
            build_checkout(b.path(), target.path(), false, |_| {}, failing)
                .await
                .is_err()
        );
        let after_failure = BuiltFrom::read(&marker).unwrap();
        assert_eq!(
            after_failure.sources, UNFINISHED,
            "no sources may claim the build"
        );
        assert_eq!(
            after_failure.place,
            std::path::absolute(b.path()).unwrap().display().to_string()
        );

        // `b` fixed in place: no cleaning (the outputs of its earlier builds stay, and cargo
        // rebuilds what changed); from anywhere else, or with no marker, the crates are cleaned.
        assert!(!needs_cleaning(Some(&after_failure), &after_failure.place));
        assert!(needs_cleaning(Some(&after_failure), "/another/checkout"));
        assert!(needs_cleaning(None, &after_failure.place));
        write(b.path(), "bench-suite/src/lib.rs", "pub fn f() { fixed() }");
        drop(
            build_checkout(b.path(), target.path(), false, |_| {}, || async { Ok(()) })
                .await
                .unwrap(),
        );
        assert_eq!(
            BuiltFrom::read(&marker).unwrap().sources,
            sources_digest(b.path()).unwrap()
        );
    }

    #[tokio::test]
    async fn other_sources_wait_while_another_run_measures() {
        let target = tempfile::tempdir().unwrap();
        let a = checkout("pub fn f() {}");
        let b = checkout("pub fn f() { other() }");
        let ok = || async { Ok(()) };
        let held = build_checkout(a.path(), target.path(), false, |_| {}, ok)
            .await
            .unwrap();
        let told = std::sync::Mutex::new(Vec::new());
        let waiting = build_checkout(
            b.path(),
            target.path(),
            false,
            |message| told.lock().unwrap().push(message.to_owned()),
            ok,
        );
        // While `held` lives, `b` cannot take the exclusive lock to build.
        let timed_out = tokio::time::timeout(Duration::from_millis(600), waiting).await;
        assert!(timed_out.is_err(), "built while another run measured");
        let told = told.into_inner().unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains("waiting for another perf run"), "{told:?}");
        drop(held);
        // Once it is gone, `b` builds.
        let built = build_checkout(b.path(), target.path(), false, |_| {}, ok)
            .await
            .unwrap();
        let marker = BuiltFrom::read(&target.path().join("perf-built-from")).unwrap();
        assert_eq!(marker.sources, sources_digest(b.path()).unwrap());
        drop(built);
    }

    fn modified(path: &Path) -> std::time::SystemTime {
        std::fs::metadata(path).unwrap().modified().unwrap()
    }

    #[tokio::test]
    async fn a_harness_worktree_of_the_last_built_sources_is_backdated_and_no_other_tree_is() {
        let backdated = std::time::SystemTime::UNIX_EPOCH + BACKDATED;
        let target = tempfile::tempdir().unwrap();
        let ok = || async { Ok(()) };
        let first = checkout("pub fn f() {}");
        drop(
            build_checkout(first.path(), target.path(), true, |_| {}, ok)
                .await
                .unwrap(),
        );
        let lib = "bench-suite/src/lib.rs";
        assert_ne!(
            modified(&first.path().join(lib)),
            backdated,
            "nothing to reuse"
        );

        let someones_tree = checkout("pub fn f() {}");
        drop(
            build_checkout(someones_tree.path(), target.path(), false, |_| {}, ok)
                .await
                .unwrap(),
        );
        assert_ne!(
            modified(&someones_tree.path().join(lib)),
            backdated,
            "a tree the harness did not make keeps its times"
        );

        let same_sources = checkout("pub fn f() {}");
        let told = std::sync::Mutex::new(Vec::<String>::new());
        drop(
            build_checkout(
                same_sources.path(),
                target.path(),
                true,
                |message| told.lock().unwrap().push(message.to_owned()),
                ok,
            )
            .await
            .unwrap(),
        );
        for input in [lib, "Cargo.toml", "bench-suite/src", "bench-suite"] {
            assert_eq!(
                modified(&same_sources.path().join(input)),
                backdated,
                "{input}"
            );
        }
        for other in ["README.md", "bench-suite/target/release/junk"] {
            assert_ne!(
                modified(&same_sources.path().join(other)),
                backdated,
                "{other}"
            );
        }
        let told = told.into_inner().unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains("reusing that build"), "{told:?}");
        assert!(
            told[0].contains(&first.path().display().to_string()),
            "{told:?}"
        );

        let other_sources = checkout("pub fn f() { other() }");
        drop(
            build_checkout(other_sources.path(), target.path(), true, |_| {}, ok)
                .await
                .unwrap(),
        );
        assert_ne!(
            modified(&other_sources.path().join(lib)),
            backdated,
            "other sources are built, never backdated"
        );
    }
}
