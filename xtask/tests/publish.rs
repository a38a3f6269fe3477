//! `cargo xtask perf publish` against a local stand-in for GitHub's REST API (wiremock): the
//! real API cannot be reached from tests. `FakeGitHub` keeps a pull request's issue comments
//! and answers as GitHub does (pages of at most 100 with `Link` headers pointing at
//! `/repositories/<id>/...`, `201` on create, `200` on update, `401` without the token);
//! failures are injected in front of it with wiremock's priorities.
//!
//! Some tests call `xtask::publish` in-process, the others run the real binary. Every one
//! checks that the token appears in no output and no error, even where the stand-in echoes it
//! back in its error messages.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};
use xtask::publish::{
    self, ARTIFACT_BODY_FILE, ARTIFACT_DIR_NAME, ARTIFACT_PR_FILE, CommentSource,
    GITHUB_COMMENT_MAX_CHARS, PublishEnvironment, PublishError, Published, RetryPolicy,
    STICKY_MARKER, Token,
};

const TOKEN: &str = "ghs_s3cretT0kenThatMustNeverBePrinted";
const REPOSITORY: &str = "octo/widgets";
/// GitHub's `Link` headers name a repository by id, not by name.
const REPOSITORY_ID: u64 = 1_300_192;
const PR: u64 = 7;

/// The issue comments of pull request [`PR`], served like GitHub's REST API.
#[derive(Clone)]
struct FakeGitHub {
    base_url: String,
    state: Arc<Mutex<FakeState>>,
}

struct FakeState {
    comments: Vec<Value>,
    next_id: u64,
    /// Create the next POSTed comment but answer 502, as when an answer is lost.
    lose_next_post_answer: bool,
}

impl FakeGitHub {
    async fn start() -> (MockServer, Self) {
        let server = MockServer::start().await;
        let fake = Self {
            base_url: server.uri(),
            state: Arc::new(Mutex::new(FakeState {
                comments: Vec::new(),
                next_id: 1000,
                lose_next_post_answer: false,
            })),
        };
        Mock::given(path_regex(
            r"^/(repos/octo/widgets|repositories/1300192)/issues/",
        ))
        .respond_with(fake.clone())
        .mount(&server)
        .await;
        (server, fake)
    }

    /// Adds a comment by `login` (`type` Bot when it ends in `[bot]`), returns its id.
    fn seed(&self, login: &str, body: &str) -> u64 {
        let mut state = self.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        let comment = self.comment_json(id, login, body);
        state.comments.push(comment);
        id
    }

    fn comments(&self) -> Vec<Value> {
        self.state.lock().unwrap().comments.clone()
    }

    fn comment_json(&self, id: u64, login: &str, body: &str) -> Value {
        json!({
            "id": id,
            "node_id": format!("IC_{id}"),
            "url": format!("{}/repos/{REPOSITORY}/issues/comments/{id}", self.base_url),
            "html_url": format!("https://github.com/{REPOSITORY}/pull/{PR}#issuecomment-{id}"),
            "body": body,
            "user": {
                "login": login,
                "id": 41898282,
                "type": if login.ends_with("[bot]") { "Bot" } else { "User" },
            },
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "author_association": "NONE",
        })
    }

    fn page_link(&self, per_page: usize, page: usize, rel: &str) -> String {
        format!(
            "<{}/repositories/{REPOSITORY_ID}/issues/{PR}/comments?per_page={per_page}&page={page}>; rel=\"{rel}\"",
            self.base_url
        )
    }
}

fn github_answer(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("x-ratelimit-limit", "5000")
        .insert_header("x-ratelimit-remaining", "4999")
        .insert_header("x-github-api-version-selected", "2022-11-28")
}

fn query(request: &Request, name: &str) -> Option<usize> {
    request
        .url
        .query_pairs()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.parse().ok())
}

impl Respond for FakeGitHub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorized = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"));
        if !authorized {
            return github_answer(401).set_body_json(json!({ "message": "Bad credentials" }));
        }
        let path = request.url.path();
        let mut state = self.state.lock().unwrap();
        let list_path = |prefix: &str| format!("/{prefix}/issues/{PR}/comments");
        match request.method.as_str() {
            "GET"
                if path == list_path(&format!("repos/{REPOSITORY}"))
                    || path == list_path(&format!("repositories/{REPOSITORY_ID}")) =>
            {
                let per_page = query(request, "per_page").unwrap_or(30).clamp(1, 100);
                let page = query(request, "page").unwrap_or(1).max(1);
                let pages = state.comments.len().div_ceil(per_page).max(1);
                let start = ((page - 1) * per_page).min(state.comments.len());
                let end = (page * per_page).min(state.comments.len());
                let mut links = Vec::new();
                if page > 1 {
                    links.push(self.page_link(per_page, page - 1, "prev"));
                }
                if page < pages {
                    links.push(self.page_link(per_page, page + 1, "next"));
                    links.push(self.page_link(per_page, pages, "last"));
                }
                if page > 1 {
                    links.push(self.page_link(per_page, 1, "first"));
                }
                let mut answer = github_answer(200).set_body_json(&state.comments[start..end]);
                if !links.is_empty() {
                    answer = answer.insert_header("link", links.join(", "));
                }
                answer
            }
            "POST" if path == list_path(&format!("repos/{REPOSITORY}")) => {
                let body: Value = request.body_json().unwrap();
                let id = state.next_id;
                state.next_id += 1;
                let comment =
                    self.comment_json(id, "github-actions[bot]", body["body"].as_str().unwrap());
                state.comments.push(comment.clone());
                if std::mem::take(&mut state.lose_next_post_answer) {
                    return github_answer(502).set_body_string("<html>502 Bad Gateway</html>");
                }
                github_answer(201).set_body_json(comment)
            }
            "PATCH" if path.starts_with(&format!("/repos/{REPOSITORY}/issues/comments/")) => {
                let id: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
                let body: Value = request.body_json().unwrap();
                match state.comments.iter_mut().find(|c| c["id"] == id) {
                    Some(comment) => {
                        comment["body"] = body["body"].clone();
                        github_answer(200).set_body_json(comment.clone())
                    }
                    None => github_answer(404).set_body_json(json!({ "message": "Not Found" })),
                }
            }
            _ => github_answer(404).set_body_json(json!({ "message": "Not Found" })),
        }
    }
}

/// A failure whose message echoes the request's Authorization header back, as a careless
/// proxy might: whatever publishing makes of it must not show the token.
fn echoing_failure(status: u16, headers: &[(&'static str, String)]) -> impl Respond + 'static {
    let headers = headers.to_vec();
    move |request: &Request| {
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut answer = ResponseTemplate::new(status).set_body_json(json!({
            "message": format!("refused the request with authorization {authorization}"),
        }));
        for (name, value) in &headers {
            answer = answer.insert_header(*name, value.as_str());
        }
        answer
    }
}

/// Answers the next `times` requests of `verb` with `answer`, before the fake sees them.
async fn fail_next(server: &MockServer, verb: &str, times: u64, answer: impl Respond + 'static) {
    Mock::given(method(verb))
        .respond_with(answer)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer, verb: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|request| request.method.as_str() == verb)
        .collect()
}

fn assert_no_token(text: &str) {
    assert!(!text.contains(TOKEN), "the token was printed:\n{text}");
}

/// An environment like GitHub Actions', talking to `server`, with retries 1 ms apart.
fn environment(server: &MockServer) -> PublishEnvironment {
    PublishEnvironment {
        api_url: server.uri(),
        token: Some(Token::new(TOKEN)),
        repository: Some(REPOSITORY.to_owned()),
        event_path: None,
        step_summary: None,
        retry: RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(1),
        },
        comment_author: publish::DEFAULT_COMMENT_AUTHOR.to_owned(),
    }
}

fn report_markdown(headline: &str) -> String {
    format!(
        "## Performance: {headline}\n\nHead: `2222222222` (quick profile)\n\n### Regressions\n\n\
         | metric | base | head | change | certainty | rule |\n|---|---:|---:|---:|---|---|\n\
         | `io/due_cards/sql_statements` | 30 stmts | 31 stmts | +3.33% | exact count | any growth |\n"
    )
}

/// A run's output directory holding `report.md`.
fn report_dir(markdown: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.md"), markdown).unwrap();
    dir
}

fn report_source(dir: &Path) -> CommentSource {
    CommentSource::Report {
        dir: dir.to_path_buf(),
    }
}

/// The real `xtask` binary with a GitHub Actions-like environment for `server` (nothing from
/// this process's own GitHub variables leaks in).
async fn xtask(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(args).stdin(std::process::Stdio::null());
    for name in [
        "GITHUB_TOKEN",
        "GITHUB_REPOSITORY",
        "GITHUB_API_URL",
        "GITHUB_EVENT_PATH",
        "GITHUB_STEP_SUMMARY",
        publish::RETRY_BASE_ENV,
    ] {
        command.env_remove(name);
    }
    command
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", REPOSITORY)
        .env(publish::RETRY_BASE_ENV, "1");
    command.envs(env.iter().copied());
    for name in unset {
        command.env_remove(name);
    }
    let output = command.output().await.unwrap();
    assert_no_token(&String::from_utf8_lossy(&output.stdout));
    assert_no_token(&String::from_utf8_lossy(&output.stderr));
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_binary_creates_the_comment_once_then_updates_it_in_place() {
    let (server, fake) = FakeGitHub::start().await;
    fake.seed("reviewer", "Looks good, but is it fast?");
    let dir = report_dir(&report_markdown("1 regression(s)"));
    let summary = dir.path().join("step-summary.md");
    let report_arg = dir.path().to_str().unwrap();
    let env = [
        ("GITHUB_API_URL", server.uri()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = ["perf", "publish", "--report", report_arg, "--pr", "7"];

    let first = xtask(&args, &env, &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("created the perf comment on PR #7"),
        "{}",
        text(&first.stdout)
    );

    std::fs::write(
        dir.path().join("report.md"),
        report_markdown("No regression"),
    )
    .unwrap();
    let second = xtask(&args, &env, &[]).await;
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("updated the perf comment"),
        "{}",
        text(&second.stdout)
    );

    assert_eq!(requests(&server, "POST").await.len(), 1, "posted once");
    let patches = requests(&server, "PATCH").await;
    assert_eq!(patches.len(), 1, "then edited in place");
    let comments = fake.comments();
    assert_eq!(comments.len(), 2, "the reviewer's and ours");
    let ours = comments[1]["body"].as_str().unwrap();
    assert!(ours.starts_with(&format!("{STICKY_MARKER}\n## Performance: No regression")));
    assert!(
        patches[0]
            .url
            .path()
            .ends_with(&format!("/issues/comments/{}", comments[1]["id"]))
    );
    assert!(
        requests(&server, "GET").await.iter().all(|request| {
            request.headers.get("authorization").unwrap() == &format!("Bearer {TOKEN}")
        }),
        "every request carries the token"
    );
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary.contains("## Performance: 1 regression(s)"),
        "{summary}"
    );
    assert!(
        summary.contains("## Performance: No regression"),
        "{summary}"
    );
}

#[tokio::test]
async fn the_binary_saves_an_artifact_when_the_token_may_not_comment_and_from_artifact_posts_it() {
    // A fork's pull request: its token may read, not write.
    let (fork_server, _) = FakeGitHub::start().await;
    fail_next(
        &fork_server,
        "POST",
        1,
        echoing_failure(403, &[("x-ratelimit-remaining", "4999".to_owned())]),
    )
    .await;
    let markdown = report_markdown("1 regression(s)");
    let dir = report_dir(&markdown);
    let report_arg = dir.path().to_str().unwrap();
    let fork_url = fork_server.uri();
    let saved = xtask(
        &["perf", "publish", "--report", report_arg, "--pr", "7"],
        &[("GITHUB_API_URL", &fork_url)],
        &[],
    )
    .await;
    assert_eq!(
        saved.status.code(),
        Some(0),
        "the gate's verdict is not publishing's"
    );
    let stderr = text(&saved.stderr);
    assert!(stderr.contains("warning: no comment on PR #7"), "{stderr}");
    assert!(stderr.contains("fork"), "{stderr}");
    assert!(stderr.contains("--from-artifact"), "{stderr}");
    assert!(
        stderr.contains("***"),
        "the echoed token is redacted: {stderr}"
    );
    let artifact = dir.path().join(ARTIFACT_DIR_NAME);
    let saved_body = std::fs::read_to_string(artifact.join(ARTIFACT_BODY_FILE)).unwrap();
    assert_eq!(saved_body, format!("{STICKY_MARKER}\n{markdown}"));
    assert_eq!(
        std::fs::read_to_string(artifact.join(ARTIFACT_PR_FILE)).unwrap(),
        "7\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.md")).unwrap(),
        markdown,
        "the report is untouched"
    );

    // The `workflow_run` workflow: a token that may write, the artifact, no PR code.
    let (server, fake) = FakeGitHub::start().await;
    let event = dir.path().join("workflow_run.json");
    std::fs::write(&event, workflow_run_event(RUN_HEAD)).unwrap();
    serve_pull_request_head(&server, RUN_HEAD).await;
    let url = server.uri();
    let posted = xtask(
        &[
            "perf",
            "publish",
            "--from-artifact",
            artifact.to_str().unwrap(),
        ],
        &[
            ("GITHUB_API_URL", &url),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ],
        &[],
    )
    .await;
    assert_eq!(posted.status.code(), Some(0), "{}", text(&posted.stderr));
    assert!(text(&posted.stdout).contains("created the perf comment on PR #7"));
    let posts = requests(&server, "POST").await;
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].url.path(),
        format!("/repos/{REPOSITORY}/issues/7/comments")
    );
    assert_eq!(fake.comments()[0]["body"], saved_body);
}

/// The commit a pull request's perf run ran on, as its `workflow_run` event names it.
const RUN_HEAD: &str = "4f6c1b0e8a7d2c3b5a6f7e8d9c0b1a2f3e4d5c6b";

fn workflow_run_event(head_sha: &str) -> String {
    json!({
        "action": "completed",
        "workflow_run": { "id": 1, "event": "pull_request", "head_sha": head_sha },
    })
    .to_string()
}

/// Answers `GET /repos/octo/widgets/pulls/7` with a pull request whose head is `head_sha`.
async fn serve_pull_request_head(server: &MockServer, head_sha: &str) {
    Mock::given(method("GET"))
        .and(path_regex(format!(r"^/repos/{REPOSITORY}/pulls/{PR}$")))
        .respond_with(github_answer(200).set_body_json(json!({
            "number": PR,
            "head": { "sha": head_sha, "ref": "feature" },
        })))
        .mount(server)
        .await;
}

#[tokio::test]
async fn an_artifact_whose_pull_request_moved_to_another_commit_is_not_posted() {
    // The artifact names PR 7, but PR 7's head is not the commit the saving run ran on: a
    // newer push, or an artifact that names a pull request it did not come from.
    let (server, fake) = FakeGitHub::start().await;
    serve_pull_request_head(&server, "0123456789abcdef0123456789abcdef01234567").await;
    let artifact = tempfile::tempdir().unwrap();
    std::fs::write(
        artifact.path().join(ARTIFACT_BODY_FILE),
        "## Performance: ok\n",
    )
    .unwrap();
    std::fs::write(artifact.path().join(ARTIFACT_PR_FILE), "7\n").unwrap();
    let event = artifact.path().join("workflow_run.json");
    std::fs::write(&event, workflow_run_event(RUN_HEAD)).unwrap();
    let source = CommentSource::Artifact {
        dir: artifact.path().to_path_buf(),
    };
    let environment = PublishEnvironment {
        event_path: Some(event.clone()),
        ..environment(&server)
    };

    let error = publish::publish(&source, None, &environment)
        .await
        .unwrap_err();

    assert!(
        matches!(error, PublishError::ArtifactOfAnotherHead { pr: 7, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(RUN_HEAD), "{message}");
    assert!(message.contains("0123456789abcdef"), "{message}");
    assert!(message.contains("nothing was posted"), "{message}");
    assert_no_token(&format!("{error:?} {message}"));
    assert!(fake.comments().is_empty());
    assert!(requests(&server, "POST").await.is_empty());
    assert!(requests(&server, "PATCH").await.is_empty());

    // A `workflow_run` event without the commit cannot vouch for the artifact either.
    std::fs::write(&event, r#"{"workflow_run":{"id":1}}"#).unwrap();
    let error = publish::publish(&source, None, &environment)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("workflow_run.head_sha"),
        "{error}"
    );
    assert!(fake.comments().is_empty());
}

#[tokio::test]
async fn the_binary_exits_2_naming_a_missing_variable_and_sends_nothing() {
    let (server, _) = FakeGitHub::start().await;
    let dir = report_dir(&report_markdown("No regression"));
    let report_arg = dir.path().to_str().unwrap();
    let url = server.uri();
    let with_pr = ["perf", "publish", "--report", report_arg, "--pr", "7"];
    let without_pr = ["perf", "publish", "--report", report_arg];
    let cases: [(&[&str], &[&str], &[&str]); 3] = [
        (
            &with_pr,
            &["GITHUB_TOKEN"],
            &["GITHUB_TOKEN is not set", "secrets.GITHUB_TOKEN"],
        ),
        (
            &with_pr,
            &["GITHUB_REPOSITORY"],
            &["GITHUB_REPOSITORY is not set", "owner/name"],
        ),
        (
            &without_pr,
            &[],
            &[
                "no pull request to comment on",
                "GITHUB_EVENT_PATH",
                "--pr <number>",
            ],
        ),
    ];
    for (args, unset, expected) in cases {
        let output = xtask(args, &[("GITHUB_API_URL", &url)], unset).await;
        let stderr = text(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?} {unset:?}: {stderr}"
        );
        for words in expected {
            assert!(stderr.contains(words), "{unset:?}: {words:?} in {stderr}");
        }
        assert!(stderr.contains("fix:"), "{stderr}");
    }
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "bad input is refused before any request"
    );
    assert!(!dir.path().join(ARTIFACT_DIR_NAME).exists());
}

#[tokio::test]
async fn the_binary_gives_up_after_four_attempts_with_exit_2_and_keeps_the_report() {
    let (server, fake) = FakeGitHub::start().await;
    fail_next(&server, "GET", 100, echoing_failure(503, &[])).await;
    let markdown = report_markdown("No regression");
    let dir = report_dir(&markdown);
    let url = server.uri();
    let started = Instant::now();
    let output = xtask(
        &[
            "perf",
            "publish",
            "--report",
            dir.path().to_str().unwrap(),
            "--pr",
            "7",
        ],
        &[("GITHUB_API_URL", &url)],
        &[],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "could not publish the perf comment on PR #7 of {REPOSITORY} in 4 attempts"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("503"), "{stderr}");
    assert!(stderr.contains("attempt 4 of 4"), "{stderr}");
    assert!(
        stderr.contains("fix: GitHub or the network failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("***"),
        "the echoed token is redacted: {stderr}"
    );
    assert_eq!(requests(&server, "GET").await.len(), 4);
    assert!(fake.comments().is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.md")).unwrap(),
        markdown
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no long backoff"
    );
}

/// Issue 13, defect 6: a fork's author who posts the marker first must not get the verdict
/// written into a comment they control, nor the real comment suppressed.
#[tokio::test]
async fn a_marked_comment_by_someone_else_is_never_taken_over() {
    let (server, fake) = FakeGitHub::start().await;
    let planted = fake.seed(
        "fork-author",
        &format!("{STICKY_MARKER}\n## Performance: No regression (trust me)"),
    );
    let dir = report_dir(&report_markdown("1 regression(s)"));

    let published = publish::publish(&report_source(dir.path()), Some(PR), &environment(&server))
        .await
        .unwrap();

    assert!(
        matches!(published, Published::Created { pr: 7, .. }),
        "{published:?}"
    );
    assert!(
        requests(&server, "PATCH").await.is_empty(),
        "nothing edited"
    );
    let comments = fake.comments();
    assert_eq!(comments.len(), 2);
    let untouched = comments.iter().find(|c| c["id"] == planted).unwrap();
    assert!(
        untouched["body"].as_str().unwrap().contains("(trust me)"),
        "{untouched}"
    );
    let ours = comments.iter().find(|c| c["id"] != planted).unwrap();
    assert_eq!(ours["user"]["login"], publish::DEFAULT_COMMENT_AUTHOR);
    assert!(ours["body"].as_str().unwrap().contains("1 regression(s)"));
}

#[tokio::test]
async fn a_sticky_comment_on_the_second_page_is_found_through_link_headers() {
    let (server, fake) = FakeGitHub::start().await;
    for n in 0..120 {
        fake.seed("reviewer", &format!("comment {n}"));
    }
    let ours = fake.seed(
        "github-actions[bot]",
        &format!("{STICKY_MARKER}\n## Performance: old"),
    );
    for n in 0..30 {
        fake.seed("reviewer", &format!("later comment {n}"));
    }
    let dir = report_dir(&report_markdown("No regression"));

    let published = publish::publish(&report_source(dir.path()), Some(PR), &environment(&server))
        .await
        .unwrap();

    assert_no_token(&format!("{published} {published:?}"));
    assert!(
        matches!(published, Published::Updated { comment_id, pr: 7, .. } if comment_id == ours),
        "{published:?}"
    );
    let gets = requests(&server, "GET").await;
    assert_eq!(gets.len(), 2, "both pages, no more");
    assert_eq!(gets[0].url.query(), Some("per_page=100"));
    assert_eq!(
        gets[1].url.path(),
        format!("/repositories/{REPOSITORY_ID}/issues/7/comments"),
        "the `next` link GitHub sent"
    );
    assert_eq!(query(&gets[1], "page"), Some(2));
    assert!(
        requests(&server, "POST").await.is_empty(),
        "no second comment"
    );
    assert_eq!(fake.comments().len(), 151);
}

#[tokio::test]
async fn a_server_error_is_retried_and_the_pull_request_comes_from_the_event() {
    let (server, fake) = FakeGitHub::start().await;
    fail_next(&server, "GET", 1, echoing_failure(502, &[])).await;
    let dir = report_dir(&report_markdown("No regression"));
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"action":"synchronize","number":7,"pull_request":{"number":7}}"#,
    )
    .unwrap();
    let environment = PublishEnvironment {
        event_path: Some(event),
        ..environment(&server)
    };

    let published = publish::publish(&report_source(dir.path()), None, &environment)
        .await
        .unwrap();

    assert_no_token(&format!("{published} {published:?}"));
    assert!(
        matches!(published, Published::Created { pr: 7, .. }),
        "{published:?}"
    );
    assert_eq!(
        requests(&server, "GET").await.len(),
        2,
        "one failed, one answered"
    );
    assert_eq!(requests(&server, "POST").await.len(), 1);
    assert_eq!(fake.comments().len(), 1);
}

#[tokio::test]
async fn a_comment_whose_creation_answer_was_lost_is_not_posted_twice() {
    let (server, fake) = FakeGitHub::start().await;
    fake.state.lock().unwrap().lose_next_post_answer = true;
    let dir = report_dir(&report_markdown("No regression"));

    let published = publish::publish(&report_source(dir.path()), Some(PR), &environment(&server))
        .await
        .unwrap();

    assert_no_token(&format!("{published} {published:?}"));
    assert!(
        matches!(published, Published::Updated { .. }),
        "{published:?}"
    );
    assert_eq!(
        requests(&server, "POST").await.len(),
        1,
        "never a second POST"
    );
    assert_eq!(requests(&server, "PATCH").await.len(), 1);
    let comments = fake.comments();
    assert_eq!(comments.len(), 1, "exactly one comment: {comments:?}");
    assert!(
        comments[0]["body"]
            .as_str()
            .unwrap()
            .starts_with(STICKY_MARKER)
    );
}

#[tokio::test]
async fn rate_limits_are_retried_and_their_waits_bounded_by_the_policy() {
    let (server, fake) = FakeGitHub::start().await;
    let in_an_hour = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    // The primary limit (403, none remaining, reset in an hour), then a secondary one (429,
    // retry-after a minute): both honoured only up to 60 first delays (60 ms here).
    fail_next(
        &server,
        "GET",
        1,
        echoing_failure(
            403,
            &[
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", in_an_hour),
            ],
        ),
    )
    .await;
    fail_next(
        &server,
        "POST",
        1,
        echoing_failure(429, &[("retry-after", "60".to_owned())]),
    )
    .await;
    let dir = report_dir(&report_markdown("No regression"));
    let started = Instant::now();

    let published = publish::publish(&report_source(dir.path()), Some(PR), &environment(&server))
        .await
        .unwrap();

    assert_no_token(&format!("{published} {published:?}"));
    assert!(
        matches!(published, Published::Created { .. }),
        "{published:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        requests(&server, "GET").await.len(),
        3,
        "limited, then two attempts"
    );
    assert_eq!(
        requests(&server, "POST").await.len(),
        2,
        "limited, then created"
    );
    assert_eq!(fake.comments().len(), 1);
    assert!(
        !dir.path().join(ARTIFACT_DIR_NAME).exists(),
        "a rate limit is no fork"
    );
}

#[tokio::test]
async fn a_refused_token_is_an_error_that_does_not_show_it() {
    let (server, _) = FakeGitHub::start().await;
    fail_next(&server, "GET", 1, echoing_failure(401, &[])).await;
    let dir = report_dir(&report_markdown("No regression"));

    let error = publish::publish(&report_source(dir.path()), Some(PR), &environment(&server))
        .await
        .unwrap_err();

    let message = error.to_string();
    assert!(matches!(error, PublishError::Refused { .. }), "{error:?}");
    assert!(message.contains("401"), "{message}");
    assert!(
        message.contains("GITHUB_TOKEN was not accepted"),
        "{message}"
    );
    assert!(message.contains("authorization Bearer ***"), "{message}");
    assert_no_token(&message);
    assert_no_token(&format!("{error:?}"));
    assert_eq!(
        requests(&server, "GET").await.len(),
        1,
        "a 401 is not retried"
    );
}

#[tokio::test]
async fn an_oversize_report_is_posted_under_the_limit_with_the_rows_left_out_counted() {
    let (server, fake) = FakeGitHub::start().await;
    let rows: String = (0..3000)
        .map(|i| {
            format!(
                "| `io/scenario_{i:04}/sql/select_{i:08x}` | 100 stmts | 100 stmts | +0.00% | exact count | any growth is a regression |\n"
            )
        })
        .collect();
    let markdown = format!(
        "## Performance: No regression: 0 improvement(s), 3000 unchanged.\n\n\
         <details><summary>3000 unchanged, informational or new rows</summary>\n\n\
         | metric | base | head | change | certainty | rule |\n|---|---:|---:|---:|---|---|\n\
         {rows}\n</details>\n\n<sub>Time: not recorded.</sub>\n"
    );
    assert!(markdown.len() > 3 * GITHUB_COMMENT_MAX_CHARS);
    let dir = report_dir(&markdown);

    publish::publish(&report_source(dir.path()), Some(PR), &environment(&server))
        .await
        .unwrap();

    let body = fake.comments()[0]["body"].as_str().unwrap().to_owned();
    assert!(
        body.chars().count() <= GITHUB_COMMENT_MAX_CHARS,
        "{}",
        body.len()
    );
    assert!(body.starts_with(&format!(
        "{STICKY_MARKER}\n## Performance: No regression: 0 improvement(s), 3000 unchanged.\n"
    )));
    let kept = body
        .lines()
        .filter(|line| line.starts_with("| `io/"))
        .count();
    assert!(kept > 100, "as many rows as fit are kept: {kept}");
    let note = format!(
        "_{} row(s) of this table left out to fit in one comment",
        3000 - kept
    );
    assert!(
        body.contains(&note),
        "{note} in the tail: {}",
        &body[body.len() - 400..]
    );
    assert!(body.trim_end().ends_with("<sub>Time: not recorded.</sub>"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.md")).unwrap(),
        markdown,
        "the report file keeps every row"
    );
}

#[tokio::test]
async fn a_ci_run_without_a_token_saves_the_comment_and_is_no_error() {
    let (server, _) = FakeGitHub::start().await;
    let dir = report_dir("");
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"pull_request":{"number":7}}"#).unwrap();
    let summary = dir.path().join("summary.md");
    let environment = PublishEnvironment {
        token: None,
        event_path: Some(event),
        step_summary: Some(summary.clone()),
        ..environment(&server)
    };
    let markdown = report_markdown("No regression");

    publish::after_ci_run_with(dir.path(), &markdown, &environment)
        .await
        .unwrap();

    assert_eq!(std::fs::read_to_string(summary).unwrap(), markdown);
    let artifact: PathBuf = dir.path().join(ARTIFACT_DIR_NAME);
    assert_eq!(
        std::fs::read_to_string(artifact.join(ARTIFACT_BODY_FILE)).unwrap(),
        format!("{STICKY_MARKER}\n{markdown}")
    );
    assert_eq!(
        std::fs::read_to_string(artifact.join(ARTIFACT_PR_FILE)).unwrap(),
        "7\n"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_api_is_tried_four_times_then_named() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = report_dir(&report_markdown("No regression"));
    let environment = PublishEnvironment {
        api_url: format!("http://127.0.0.1:{port}"),
        token: Some(Token::new(TOKEN)),
        repository: Some(REPOSITORY.to_owned()),
        event_path: None,
        step_summary: None,
        retry: RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(1),
        },
        comment_author: publish::DEFAULT_COMMENT_AUTHOR.to_owned(),
    };

    let error = publish::publish(&report_source(dir.path()), Some(PR), &environment)
        .await
        .unwrap_err();

    let message = error.to_string();
    assert!(
        matches!(error, PublishError::GaveUp { attempts: 4, .. }),
        "{error:?}"
    );
    assert!(
        message.contains(&format!("GET /repos/{REPOSITORY}/issues/7/comments")),
        "{message}"
    );
    assert!(
        message.contains("connect"),
        "the transport's reason: {message}"
    );
    assert_no_token(&message);
    assert_no_token(&format!("{error:?}"));
    assert!(!dir.path().join(ARTIFACT_DIR_NAME).exists());
}

#[tokio::test]
async fn an_artifact_is_checked_and_given_the_marker_before_it_is_posted() {
    let (server, fake) = FakeGitHub::start().await;
    let artifact = tempfile::tempdir().unwrap();
    let source = CommentSource::Artifact {
        dir: artifact.path().to_path_buf(),
    };
    // It comes from a pull request's run: its files are input to check, not to trust.
    std::fs::write(
        artifact.path().join(ARTIFACT_BODY_FILE),
        "## Performance: ok\n",
    )
    .unwrap();
    for (pr_file, pr_flag, expected) in [
        ("7; rm -rf /\n", None, "is not a pull request number"),
        ("0\n", None, "is not a pull request number"),
        ("7\n", Some(8), "the artifact is for PR #7, not #8"),
    ] {
        std::fs::write(artifact.path().join(ARTIFACT_PR_FILE), pr_file).unwrap();
        let error = publish::publish(&source, pr_flag, &environment(&server))
            .await
            .unwrap_err();
        assert!(
            matches!(error, PublishError::UnreadableInput { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(expected), "{error}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());

    std::fs::write(artifact.path().join(ARTIFACT_PR_FILE), "7\n").unwrap();
    let published = publish::publish(&source, Some(PR), &environment(&server))
        .await
        .unwrap();

    assert_no_token(&format!("{published} {published:?}"));
    assert!(
        matches!(published, Published::Created { pr: 7, .. }),
        "{published:?}"
    );
    assert_eq!(
        fake.comments()[0]["body"],
        format!("{STICKY_MARKER}\n## Performance: ok\n"),
        "the marker heads every comment, so the next run finds it"
    );
}
