//! Real repositories in temp dirs: a project clone with a committed file, bare "remotes"
//! reached by path, file:// or git:// (a real `git daemon`, so pushes meet a real server).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::Instant;

use git2::{Status, StatusOptions};
use tempfile::TempDir;

use super::sync::merge_files;
use super::*;
use crate::record::{Metric, MetricKind, Suite, TestRecord, Unit};

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
    let metric = Metric {
        name: "io/due_cards/sql_statements".to_owned(),
        suite: Suite::IoCounts,
        unit: Unit::Statements,
        kind: MetricKind::Deterministic,
        value: 30.0,
        interval: None,
        samples: Vec::new(),
        shape: None,
    };
    TestRecord::new(&sha(n))
        .machine_class(machine_class)
        .created_at(created_at)
        .metrics(vec![metric])
        .build()
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
fn a_shards_record_is_refused_and_the_branch_is_unchanged() {
    let dir = project();
    let store = store(dir.path());
    store.put(&record("m", 1)).unwrap();
    let before = tip(dir.path());
    let mut part = record("m", 2);
    part.shard = Some(crate::record::ShardInfo {
        index: 2,
        count: 3,
        units: vec!["io/due_cards".to_owned()],
        partition: "0123456789abcdef".to_owned(),
        filter: None,
    });
    let error = store.put(&part).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, StoreError::ShardRecord { .. })
            && message.contains("shard 2/3 of a sharded run")
            && message.contains("perf merge"),
        "{message}"
    );
    assert_eq!(tip(dir.path()), before);
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
