//! Bad input and faults: each gives exit code 2, one clear message naming the problem and the
//! fix, and loses nothing (no record stored, files left untouched, services torn down).

use std::process::{Command, Stdio};

use perf_tests::{assert_torn_down, fixture, heavy, interrupt_when, ready_services, run};

#[test]
fn no_docker_engine_and_no_server_binaries_lists_the_three_fixes() {
    let fixture = fixture();
    let empty_path = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let result = run(Command::new(fixture.xtask_binary())
        .args([
            "perf",
            "--base",
            "none",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .current_dir(&fixture.root)
        .env("PATH", empty_path.path())
        .env("DOCKER_HOST", "unix:///nonexistent/perf-tests/docker.sock")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null()));
    assert_eq!(result.code, Some(2), "{}", result.describe());
    for fix in [
        "PERF_POSTGRES_IMAGE",
        "redis-server",
        "DATABASE_URL",
        "--services external",
    ] {
        assert!(
            result.stderr.contains(fix),
            "missing {fix:?}: {}",
            result.describe()
        );
    }
    assert!(!out.path().join("runs").exists());
}

#[test]
fn a_base_revision_that_does_not_exist_fails_before_any_service_starts() {
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let result = run(fixture.xtask(&[
        "perf",
        "--services",
        "native",
        "--base",
        "no-such-branch-or-sha",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(result.code, Some(2), "{}", result.describe());
    assert!(
        result.stderr.contains("no-such-branch-or-sha"),
        "{}",
        result.describe()
    );
    assert!(
        !result.stderr.contains("services:"),
        "services started: {}",
        result.describe()
    );
}

#[test]
fn a_corrupt_or_newer_record_is_an_error_naming_the_file_which_is_left_untouched() {
    let _heavy = heavy(); // another test moves the fixture's HEAD while it holds the lock
    let fixture = fixture();
    let head = fixture.head();
    for (contents, expected) in [
        ("{ this is not json", "not a valid run record"),
        ("{\"schema_version\": 99, \"commit\": \"x\"}", "newer"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let runs = out.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        let path = runs.join(format!("{head}.json"));
        std::fs::write(&path, contents).unwrap();
        let result = run(fixture.xtask(&[
            "perf",
            "--services",
            "native",
            "--base",
            "HEAD",
            "--out",
            out.path().to_str().unwrap(),
        ]));
        assert_eq!(result.code, Some(2), "{}", result.describe());
        assert!(
            result.stderr.contains(path.to_str().unwrap()),
            "{}",
            result.describe()
        );
        assert!(result.stderr.contains(expected), "{}", result.describe());
        assert!(
            !result.stderr.contains("services:"),
            "services started: {}",
            result.describe()
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            contents,
            "the file was changed"
        );
    }
}

#[test]
fn a_usage_error_exits_with_the_harness_error_code() {
    let fixture = fixture();
    let result = run(fixture.xtask(&["perf", "--no-such-flag"]));
    assert_eq!(result.code, Some(2), "{}", result.describe());
}

/// `--paired` times base and head side by side: without a base it cannot, and says so before
/// any service starts; its round count is checked by the flag parser.
#[test]
fn paired_without_a_base_or_with_too_few_rounds_is_a_usage_error() {
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let no_base = run(fixture.xtask(&[
        "perf",
        "--paired",
        "--services",
        "native",
        "--base",
        "none",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(no_base.code, Some(2), "{}", no_base.describe());
    assert!(
        no_base.stderr.contains("--paired") && no_base.stderr.contains("fix:"),
        "{}",
        no_base.describe()
    );
    assert!(
        !no_base.stderr.contains("services:"),
        "services started: {}",
        no_base.describe()
    );
    let too_few = run(fixture.xtask(&["perf", "--paired", "--paired-rounds", "5"]));
    assert_eq!(too_few.code, Some(2), "{}", too_few.describe());
    assert!(
        too_few.stderr.contains("--paired-rounds"),
        "{}",
        too_few.describe()
    );
}

#[test]
fn sigint_mid_run_tears_services_down_and_saves_no_record() {
    let _heavy = heavy();
    let fixture = fixture();
    let out = tempfile::tempdir().unwrap();
    let command = fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        "none",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let interrupted = interrupt_when(command, "seeding");
    assert_eq!(interrupted.code, Some(2), "{}", interrupted.describe());
    assert!(
        interrupted.stderr.contains("interrupted by SIGINT"),
        "{}",
        interrupted.describe()
    );
    assert_torn_down(&ready_services(&interrupted.stderr));
    assert!(
        !out.path().join("runs").exists(),
        "an interrupted run stored a record"
    );
}

#[test]
fn a_benchmark_that_fails_to_build_is_a_harness_error_that_tears_services_down() {
    let _heavy = heavy();
    let fixture = fixture();
    let good = fixture.head();
    let out = tempfile::tempdir().unwrap();
    // The instruction benchmark, the smallest target of bench-suite: cargo forgets what a
    // failed build's target was built from, so the next test's build compiles it again (about
    // 10 s; breaking the library instead made the next build recompile all of bench-suite).
    let bench = fixture.root.join("bench-suite/benches/instructions.rs");
    let original = std::fs::read_to_string(&bench).unwrap();
    std::fs::write(
        &bench,
        format!("{original}\nconst BROKEN: u32 = \"not a number\";\n"),
    )
    .unwrap();
    let result = run(fixture.xtask(&[
        "perf",
        "--quick",
        "--services",
        "native",
        "--base",
        "none",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    std::fs::write(&bench, original).unwrap();
    assert_eq!(fixture.head(), good);
    assert_eq!(result.code, Some(2), "{}", result.describe());
    assert!(
        result.stderr.contains("cargo bench --no-run"),
        "{}",
        result.describe()
    );
    assert!(
        result.stderr.contains("mismatched types"),
        "{}",
        result.describe()
    );
    assert_torn_down(&ready_services(&result.stderr));
    assert!(
        !out.path().join("runs").exists(),
        "a failed run stored a record"
    );
}

#[test]
fn a_filter_that_selects_nothing_is_a_usage_error_naming_the_fix() {
    let _heavy = heavy();
    let fixture = fixture();
    let result = run(fixture.xtask(&["perf", "--list", "--filter", "no_such_benchmark"]));
    assert_eq!(result.code, Some(2), "{}", result.describe());
    assert!(
        result.stderr.contains("selects no benchmark or scenario")
            && result.stderr.contains("cargo xtask perf --list"),
        "{}",
        result.describe()
    );
    assert!(result.stdout.is_empty(), "{}", result.describe());

    // Issue 13, defect 8: a measuring run with such a filter built, seeded, measured nothing
    // and exited 0, so a gate with a typo in its filter always passed.
    let out = tempfile::tempdir().unwrap();
    let measured = run(fixture.xtask(&[
        "perf",
        "--services",
        "native",
        "--base",
        "none",
        "--filter",
        "no_such_benchmark",
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(measured.code, Some(2), "{}", measured.describe());
    assert!(
        measured
            .stderr
            .contains("--filter \"no_such_benchmark\" selects no benchmark, scenario or plan")
            && measured
                .stderr
                .contains("fix: run `cargo xtask perf --list`"),
        "{}",
        measured.describe()
    );
    assert!(
        !measured.stderr.contains("services:"),
        "services started: {}",
        measured.describe()
    );
    assert!(!out.path().join("runs").exists() && !out.path().join("filtered").exists());
}

/// Issue 13, defect 9: SIGINT was caught for every command but only the measuring ones
/// listened, so `baseline fetch` from a remote that never answers could not be stopped. The
/// remote here is a loopback socket that accepts and says nothing; SIGINT is sent once git has
/// connected to it (so the harness is past installing its handlers).
#[test]
fn sigint_stops_a_baseline_fetch_from_a_remote_that_never_answers() {
    let fixture = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connected, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Holds every connection open, answering nothing, until the test process ends.
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            let _ = connected.send(());
        }
    });
    let mut child = fixture
        .xtask(&[
            "perf",
            "baseline",
            "fetch",
            "--remote",
            &format!("git://127.0.0.1:{port}/silent.git"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cargo xtask");
    accepted
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("git never connected to the silent remote");
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("baseline fetch was still running 30 s after SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
}
