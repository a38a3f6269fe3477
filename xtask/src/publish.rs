//! `cargo xtask perf publish`: a run's Markdown report as ONE sticky comment on its pull
//! request (found again by a hidden marker and edited in place, never posted twice) and in the
//! job summary. When the token may not comment (a pull request from a fork), the comment is
//! saved as an artifact directory that a trusted `workflow_run` workflow posts with
//! `--from-artifact`.
//!
//! It must never print the token (every text that comes from outside is redacted before it
//! becomes a message), never change the report files it publishes, and never build or run
//! code: `--from-artifact` only reads two files, so a workflow holding a write token can run it
//! on an artifact that a fork's pull request made.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use octocrab::{FromResponse, Octocrab, Page};
use serde::Deserialize;

use crate::record;
use crate::render;

/// The first line of the sticky comment's body, hidden when GitHub renders it: how the comment
/// is found again.
pub const STICKY_MARKER: &str = "<!-- perf-harness:sticky-comment -->";

/// The most characters GitHub accepts in the body of an issue or pull request comment.
pub const GITHUB_COMMENT_MAX_CHARS: usize = 65_536;

/// The report a run writes in its output directory (`pipeline::report`).
pub const REPORT_FILE: &str = "report.md";

/// The artifact directory, inside the report directory, of a comment that could not be posted.
pub const ARTIFACT_DIR_NAME: &str = "comment";
/// The comment's body (marker included) in the artifact directory.
pub const ARTIFACT_BODY_FILE: &str = "comment.md";
/// The pull request's number (decimal, one line) in the artifact directory.
pub const ARTIFACT_PR_FILE: &str = "pr-number";

/// The first retry delay in milliseconds (default 1000), for tests that must not wait.
pub const RETRY_BASE_ENV: &str = "PERF_PUBLISH_RETRY_BASE_MS";

/// `GITHUB_API_URL` when it is not set.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// GitHub's largest page of issue comments.
const COMMENTS_PER_PAGE: u32 = 100;
/// A bound on the pages read (30,000 comments), so a server's links cannot loop forever.
const MAX_COMMENT_PAGES: usize = 300;
/// How long one request may take before it counts as failed (and is tried again).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest artifact body read; a larger one is not a comment this harness wrote.
const MAX_ARTIFACT_BODY_BYTES: u64 = 1 << 20;

/// A GitHub token. `Debug` shows none of it, and [`Token::redact`] takes it out of any text.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// `text` with every occurrence of the token replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// How often, and how patiently, one publication is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles before each further one.
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The longest wait honoured when GitHub names one (`retry-after`, a rate limit's reset):
    /// 60 times the first delay, a minute by default.
    pub fn longest_wait(&self) -> Duration {
        self.first_delay * 60
    }
}

/// What publishing reads from the environment (GitHub Actions sets all of it but the token,
/// which a workflow passes as `GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`).
#[derive(Debug, Clone)]
pub struct PublishEnvironment {
    /// `GITHUB_API_URL`, default [`DEFAULT_API_URL`].
    pub api_url: String,
    /// `GITHUB_TOKEN`.
    pub token: Option<Token>,
    /// `GITHUB_REPOSITORY`: `owner/name`.
    pub repository: Option<String>,
    /// `GITHUB_EVENT_PATH`: the JSON of the event that started the workflow.
    pub event_path: Option<PathBuf>,
    /// `GITHUB_STEP_SUMMARY`: the job summary file of the current step.
    pub step_summary: Option<PathBuf>,
    /// [`RETRY_BASE_ENV`] sets its first delay.
    pub retry: RetryPolicy,
    /// [`COMMENT_AUTHOR_ENV`], default [`DEFAULT_COMMENT_AUTHOR`]: the login the token writes
    /// as, and the only author whose marked comment is the sticky one.
    pub comment_author: String,
}

/// Names the login the token comments as, when it is not GitHub Actions' own token (a GitHub
/// App's or a person's).
pub const COMMENT_AUTHOR_ENV: &str = "PERF_COMMENT_AUTHOR";

/// The login of the token GitHub Actions gives a workflow.
pub const DEFAULT_COMMENT_AUTHOR: &str = "github-actions[bot]";

impl PublishEnvironment {
    /// From this process's environment variables.
    pub fn from_process() -> Result<Self, PublishError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From `lookup(name)`; an empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PublishError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let token = get("GITHUB_TOKEN").map(Token::new);
        let retry = match get(RETRY_BASE_ENV) {
            None => RetryPolicy::default(),
            Some(value) => match value.trim().parse::<u64>() {
                Ok(millis) => RetryPolicy {
                    first_delay: Duration::from_millis(millis),
                    ..RetryPolicy::default()
                },
                Err(_) => {
                    return Err(PublishError::InvalidEnvironment {
                        variable: RETRY_BASE_ENV,
                        value: redact(token.as_ref(), &value),
                        problem: "not a whole number of milliseconds".to_owned(),
                        fix: "unset it (1000 ms) or set it to a number such as 1000",
                    });
                }
            },
        };
        Ok(Self {
            api_url: get("GITHUB_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
            token,
            repository: get("GITHUB_REPOSITORY"),
            event_path: get("GITHUB_EVENT_PATH").map(PathBuf::from),
            step_summary: get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            comment_author: get(COMMENT_AUTHOR_ENV)
                .map(|login| login.trim().to_owned())
                .unwrap_or_else(|| DEFAULT_COMMENT_AUTHOR.to_owned()),
            retry,
        })
    }
}

fn redact(token: Option<&Token>, text: &str) -> String {
    token.map_or_else(|| text.to_owned(), |token| token.redact(text))
}

/// Why publishing failed. Every message names what failed and the fix, and none holds the
/// token: texts from outside (GitHub's answers, transport errors) are redacted when the error
/// is made. All of them exit 2.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{variable} is not set: {needed_for}.\n  fix: {fix}")]
    MissingEnvironment {
        variable: &'static str,
        needed_for: &'static str,
        fix: &'static str,
    },
    #[error("{variable} is {value:?}: {problem}.\n  fix: {fix}")]
    InvalidEnvironment {
        variable: &'static str,
        value: String,
        problem: String,
        fix: &'static str,
    },
    #[error(
        "no pull request to comment on: {detail}.\n  fix: pass --pr <number>, or run in a workflow triggered by `pull_request` (GITHUB_EVENT_PATH names its event)"
    )]
    NoPullRequest { detail: String },
    #[error("cannot read {path}: {detail}.\n  fix: {fix}")]
    UnreadableInput {
        path: PathBuf,
        detail: String,
        fix: String,
    },
    #[error(
        "the artifact names PR #{pr}, whose head is {pr_head}, but the run that saved it ran on {run_head}: nothing was posted.\n  fix: none if the pull request was pushed to since (its newer run comments); otherwise the artifact did not come from that pull request's run, and must not be posted"
    )]
    ArtifactOfAnotherHead {
        pr: u64,
        pr_head: String,
        run_head: String,
    },
    #[error("cannot write {path}: {detail}.\n  fix: check that the directory is writable")]
    UnwritableOutput { path: PathBuf, detail: String },
    #[error("cannot set up the HTTPS client for GitHub: {detail}")]
    Client { detail: String },
    #[error("GitHub refused to {action} ({detail}).\n  fix: {fix}")]
    Refused {
        action: String,
        detail: String,
        fix: String,
    },
    #[error(
        "could not {action} in {attempts} attempts (last: {detail}); the report files were left as they are.\n  fix: {fix}"
    )]
    GaveUp {
        action: String,
        attempts: u32,
        detail: String,
        fix: String,
    },
    #[error(
        "GitHub's answer to {action} was not understood ({detail}).\n  fix: check that GITHUB_API_URL ({api_url}) is GitHub's REST API"
    )]
    Unexpected {
        action: String,
        detail: String,
        api_url: String,
    },
}

/// What to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentSource {
    /// `report.md` of a run's output directory.
    Report { dir: PathBuf },
    /// An artifact directory that an earlier publication saved (`--from-artifact`).
    Artifact { dir: PathBuf },
}

/// What a publication did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// No comment had the marker: a new one was posted.
    Created { pr: u64, url: Option<String> },
    /// The comment with the marker was edited in place.
    Updated {
        pr: u64,
        comment_id: u64,
        url: Option<String>,
    },
    /// The token may not comment (or there is none, after `perf --ci`): the comment was saved
    /// in `artifact_dir` for `--from-artifact` in a trusted workflow.
    SavedAsArtifact {
        pr: u64,
        artifact_dir: PathBuf,
        reason: String,
    },
}

impl fmt::Display for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |url: &Option<String>| url.as_ref().map_or(String::new(), |u| format!(": {u}"));
        match self {
            Self::Created { pr, url } => {
                write!(f, "created the perf comment on PR #{pr}{}", at(url))
            }
            Self::Updated {
                pr,
                comment_id,
                url,
            } => write!(
                f,
                "updated the perf comment (id {comment_id}) on PR #{pr} in place{}",
                at(url)
            ),
            Self::SavedAsArtifact {
                pr,
                artifact_dir,
                reason,
            } => write!(
                f,
                "no comment on PR #{pr}: {reason}. The comment is saved in {dir} ({ARTIFACT_BODY_FILE}, {ARTIFACT_PR_FILE}): upload it as an artifact, and post it from a `workflow_run` workflow with `cargo xtask perf publish --from-artifact <dir>`. Not an error: the perf verdict is the run's exit code",
                dir = artifact_dir.display()
            ),
        }
    }
}

/// Publishes `source` on pull request `pr` (default: the event's, or the artifact's): appends
/// it to the job summary, then creates or updates the sticky comment. Everything that can be
/// wrong with the input (files, environment) is checked before anything is written.
///
/// From a report, a 403 that is not a rate limit (the token may not comment) saves the comment
/// as an artifact (`<dir>/comment/`) and is a success; from an artifact, it is an error.
pub async fn publish(
    source: &CommentSource,
    pr: Option<u64>,
    environment: &PublishEnvironment,
) -> Result<Published, PublishError> {
    match source {
        CommentSource::Report { dir } => {
            let report_path = dir.join(REPORT_FILE);
            let markdown = read_text(&report_path, u64::MAX).map_err(|detail| {
                PublishError::UnreadableInput {
                    path: report_path.clone(),
                    detail,
                    fix: "run `cargo xtask perf` first (it writes report.md into target/perf, or --out), or pass --report <dir>".to_owned(),
                }
            })?;
            let pr = match pr {
                Some(pr) => pr,
                None => pull_request_of_event(environment)?,
            };
            let github = GitHub::connect(environment)?;
            remove_stale_artifact(dir)?;
            append_step_summary(environment.step_summary.as_deref(), &markdown)?;
            let body = comment_body(&markdown);
            match github.upsert_sticky_comment(pr, &body).await {
                Err(UpsertFailure::Forbidden { detail }) => Ok(Published::SavedAsArtifact {
                    pr,
                    artifact_dir: save_artifact(dir, pr, &body)?,
                    reason: may_not_comment(&detail),
                }),
                Err(failure) => Err(github.error(failure, pr, &rerun_command(source, pr))),
                Ok(written) => Ok(written.on(pr)),
            }
        }
        CommentSource::Artifact { dir } => {
            let artifact = read_artifact(dir)?;
            if let Some(pr) = pr.filter(|&pr| pr != artifact.pr) {
                return Err(PublishError::UnreadableInput {
                    path: dir.join(ARTIFACT_PR_FILE),
                    detail: format!("the artifact is for PR #{}, not #{pr}", artifact.pr),
                    fix: "pass the artifact of the pull request in --pr, or leave --pr out"
                        .to_owned(),
                });
            }
            let github = GitHub::connect(environment)?;
            // The artifact was written by the pull request's own run, whose code may be
            // anyone's: its PR number is believed only if that PR's head is the commit the run
            // ran on, which the `workflow_run` event (GitHub's, not the artifact's) names.
            if let Some(run_head) = workflow_run_head_sha(environment)? {
                github
                    .check_pull_request_head(artifact.pr, &run_head)
                    .await?;
            }
            append_step_summary(environment.step_summary.as_deref(), &artifact.body)?;
            match github.upsert_sticky_comment(artifact.pr, &artifact.body).await {
                Err(UpsertFailure::Forbidden { detail }) => Err(PublishError::Refused {
                    action: format!("comment on PR #{} of {}", artifact.pr, github.repository),
                    detail,
                    fix: "give this workflow's token `permissions: pull-requests: write` (a `workflow_run` workflow has a token that may write even for a fork's pull request)".to_owned(),
                }),
                Err(failure) => Err(github.error(
                    failure,
                    artifact.pr,
                    &rerun_command(source, artifact.pr),
                )),
                Ok(written) => Ok(written.on(artifact.pr)),
            }
        }
    }
}

/// `perf --ci`, once the report is written: appends it to the job summary and, in a workflow
/// run by a pull request, publishes the sticky comment. Only the job summary can fail the run:
/// a comment that could not be published is a warning, since the run's verdict is its exit
/// code. Without a token, or with one that may not comment, the comment is saved in
/// `<report_dir>/comment/` for a trusted `workflow_run` workflow.
pub async fn after_ci_run(report_dir: &Path, markdown: &str) -> Result<(), PublishError> {
    match PublishEnvironment::from_process() {
        Ok(environment) => after_ci_run_with(report_dir, markdown, &environment).await,
        Err(error) => {
            let step_summary = std::env::var_os("GITHUB_STEP_SUMMARY").map(PathBuf::from);
            append_step_summary(step_summary.as_deref(), markdown)?;
            eprintln!("warning: no PR comment: {error}");
            Ok(())
        }
    }
}

/// [`after_ci_run`] in `environment`.
pub async fn after_ci_run_with(
    report_dir: &Path,
    markdown: &str,
    environment: &PublishEnvironment,
) -> Result<(), PublishError> {
    append_step_summary(environment.step_summary.as_deref(), markdown)?;
    if environment.event_path.is_none() {
        return Ok(()); // Not in a GitHub Actions workflow: no pull request to comment on.
    }
    let pr = match pull_request_of_event(environment) {
        Ok(pr) => pr,
        Err(PublishError::NoPullRequest { .. }) => {
            eprintln!("publish: not a pull request event: no PR comment");
            return Ok(());
        }
        Err(error) => {
            eprintln!("warning: no PR comment: {error}");
            return Ok(());
        }
    };
    let body = comment_body(markdown);
    let outcome = publish_after_ci_run(report_dir, pr, &body, environment).await;
    match outcome {
        Ok(published @ Published::SavedAsArtifact { .. }) => eprintln!("warning: {published}"),
        Ok(published) => eprintln!("publish: {published}"),
        Err(error) => eprintln!("warning: no PR comment: {error}"),
    }
    Ok(())
}

/// The comment of a `perf --ci` run on `pr`, or, without a token (or `GITHUB_REPOSITORY`) or
/// with a token that may not comment, the comment saved as an artifact.
async fn publish_after_ci_run(
    report_dir: &Path,
    pr: u64,
    body: &str,
    environment: &PublishEnvironment,
) -> Result<Published, PublishError> {
    remove_stale_artifact(report_dir)?;
    let save = |reason: String| {
        let artifact_dir = save_artifact(report_dir, pr, body)?;
        Ok(Published::SavedAsArtifact {
            pr,
            artifact_dir,
            reason,
        })
    };
    let github = match GitHub::connect(environment) {
        Ok(github) => github,
        Err(
            missing @ (PublishError::MissingEnvironment { .. }
            | PublishError::InvalidEnvironment { .. }),
        ) => {
            let reason = missing.to_string();
            return save(
                reason
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .to_owned(),
            );
        }
        Err(error) => return Err(error),
    };
    match github.upsert_sticky_comment(pr, body).await {
        Ok(written) => Ok(written.on(pr)),
        Err(UpsertFailure::Forbidden { detail }) => save(may_not_comment(&detail)),
        Err(failure) => {
            let source = CommentSource::Report {
                dir: report_dir.to_path_buf(),
            };
            Err(github.error(failure, pr, &rerun_command(&source, pr)))
        }
    }
}

/// Why a comment was saved instead of posted, after a 403 that is not a rate limit.
fn may_not_comment(detail: &str) -> String {
    format!(
        "the token may not comment ({detail}), as is expected for a pull request from a fork, whose token may only read"
    )
}

/// The body of the sticky comment: the marker, then `markdown` shortened to GitHub's limit
/// (whole table rows left out, and said so). A marker already at its top (an artifact's body)
/// is not repeated.
pub fn comment_body(markdown: &str) -> String {
    let markdown = markdown
        .strip_prefix(STICKY_MARKER)
        .map_or(markdown, |rest| rest.strip_prefix('\n').unwrap_or(rest));
    let room = GITHUB_COMMENT_MAX_CHARS - STICKY_MARKER.len() - 1;
    format!("{STICKY_MARKER}\n{}", render::fit_markdown(markdown, room))
}

/// Appends `markdown` to the job summary when GitHub Actions provides one.
pub fn append_step_summary(path: Option<&Path>, markdown: &str) -> Result<(), PublishError> {
    use std::io::Write as _;
    let Some(path) = path else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(markdown.as_bytes()))
        .map_err(|error| PublishError::UnwritableOutput {
            path: path.to_path_buf(),
            detail: format!("GITHUB_STEP_SUMMARY: {error}"),
        })
}

/// The pull request of the workflow's event: `.pull_request.number`, else `.number`.
fn pull_request_of_event(environment: &PublishEnvironment) -> Result<u64, PublishError> {
    let Some(path) = &environment.event_path else {
        return Err(PublishError::NoPullRequest {
            detail: "--pr was not given and GITHUB_EVENT_PATH is not set".to_owned(),
        });
    };
    let event = read_event(path, "pass --pr <number>")?;
    pull_request_number(&event).ok_or_else(|| PublishError::NoPullRequest {
        detail: format!(
            "the event in GITHUB_EVENT_PATH ({}) has no `pull_request.number` or `number`",
            path.display()
        ),
    })
}

/// The commit that the run behind a `workflow_run` event ran on (`.workflow_run.head_sha`);
/// `None` outside a workflow or for another event. A `workflow_run` event without a commit id
/// there is an error: the artifact's pull request could not be checked.
fn workflow_run_head_sha(environment: &PublishEnvironment) -> Result<Option<String>, PublishError> {
    let Some(path) = &environment.event_path else {
        return Ok(None);
    };
    let fix = "run `publish --from-artifact` in a workflow triggered by `workflow_run` (GitHub writes its event), or unset GITHUB_EVENT_PATH";
    let event = read_event(path, fix)?;
    let Some(run) = event.get("workflow_run") else {
        return Ok(None);
    };
    match run.get("head_sha").and_then(serde_json::Value::as_str) {
        Some(sha) if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(sha.to_ascii_lowercase()))
        }
        _ => Err(PublishError::UnreadableInput {
            path: path.clone(),
            detail: "the `workflow_run` event has no commit id in `workflow_run.head_sha`"
                .to_owned(),
            fix: fix.to_owned(),
        }),
    }
}

/// The JSON of the workflow's event at `path` (`GITHUB_EVENT_PATH`); an unreadable or
/// malformed file is an error with `fix`.
fn read_event(path: &Path, fix: &str) -> Result<serde_json::Value, PublishError> {
    let unreadable = |detail: String| PublishError::UnreadableInput {
        path: path.to_path_buf(),
        detail,
        fix: fix.to_owned(),
    };
    let text = read_text(path, u64::MAX)
        .map_err(|detail| unreadable(format!("GITHUB_EVENT_PATH: {detail}")))?;
    serde_json::from_str(&text)
        .map_err(|error| unreadable(format!("GITHUB_EVENT_PATH is not JSON: {error}")))
}

/// `.pull_request.number`, else `.number`, of an event's JSON.
pub fn pull_request_number(event: &serde_json::Value) -> Option<u64> {
    event
        .pointer("/pull_request/number")
        .or_else(|| event.get("number"))
        .and_then(serde_json::Value::as_u64)
        .filter(|&number| number > 0)
}

/// The text of `path`, refused when longer than `max_bytes`.
fn read_text(path: &Path, max_bytes: u64) -> Result<String, String> {
    let len = std::fs::metadata(path)
        .map_err(|error| error.to_string())?
        .len();
    if len > max_bytes {
        return Err(format!("{len} bytes, more than the {max_bytes} expected"));
    }
    std::fs::read_to_string(path).map_err(|error| error.to_string())
}

/// A comment saved for `--from-artifact`.
struct Artifact {
    pr: u64,
    body: String,
}

fn read_artifact(dir: &Path) -> Result<Artifact, PublishError> {
    let fix = || {
        format!(
            "pass the directory a publication saved (`<report>/{ARTIFACT_DIR_NAME}/`, with {ARTIFACT_BODY_FILE} and {ARTIFACT_PR_FILE})"
        )
    };
    let pr_path = dir.join(ARTIFACT_PR_FILE);
    let pr_text = read_text(&pr_path, 64).map_err(|detail| PublishError::UnreadableInput {
        path: pr_path.clone(),
        detail,
        fix: fix(),
    })?;
    let pr = pr_text
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&pr| pr > 0)
        .ok_or_else(|| PublishError::UnreadableInput {
            path: pr_path.clone(),
            detail: format!("{:?} is not a pull request number", pr_text.trim()),
            fix: fix(),
        })?;
    let body_path = dir.join(ARTIFACT_BODY_FILE);
    let body = read_text(&body_path, MAX_ARTIFACT_BODY_BYTES).map_err(|detail| {
        PublishError::UnreadableInput {
            path: body_path.clone(),
            detail,
            fix: fix(),
        }
    })?;
    // The artifact comes from a pull request's run: whatever it holds, the comment carries the
    // marker once, at its top, and fits GitHub's limit.
    Ok(Artifact {
        pr,
        body: comment_body(&body),
    })
}

/// Saves the comment in `<report_dir>/comment/` and returns that directory.
fn save_artifact(report_dir: &Path, pr: u64, body: &str) -> Result<PathBuf, PublishError> {
    let dir = report_dir.join(ARTIFACT_DIR_NAME);
    for (name, contents) in [
        (ARTIFACT_BODY_FILE, body.to_owned()),
        (ARTIFACT_PR_FILE, format!("{pr}\n")),
    ] {
        let path = dir.join(name);
        record::write_atomically(&path, contents.as_bytes()).map_err(|error| {
            PublishError::UnwritableOutput {
                path,
                detail: error.to_string(),
            }
        })?;
    }
    Ok(dir)
}

/// Removes an artifact an earlier publication left in the report directory, so that a
/// workflow never uploads (and posts) an old comment beside a new report.
fn remove_stale_artifact(report_dir: &Path) -> Result<(), PublishError> {
    let dir = report_dir.join(ARTIFACT_DIR_NAME);
    match std::fs::remove_dir_all(&dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(PublishError::UnwritableOutput {
                path: dir,
                detail: format!("removing an old comment artifact: {error}"),
            })
        }
        _ => Ok(()),
    }
}

fn rerun_command(source: &CommentSource, pr: u64) -> String {
    match source {
        CommentSource::Report { dir } => format!(
            "cargo xtask perf publish --report {} --pr {pr}",
            dir.display()
        ),
        CommentSource::Artifact { dir } => {
            format!("cargo xtask perf publish --from-artifact {}", dir.display())
        }
    }
}

/// One issue comment, as much of it as publishing reads.
#[derive(Debug, Clone, Deserialize)]
pub struct IssueComment {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub user: Option<CommentAuthor>,
    #[serde(default)]
    pub html_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommentAuthor {
    pub login: String,
    /// `Bot` or `User`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// The comment to update: the first that `author` (the login the token writes as) wrote and
/// that starts with the marker. A marked comment by anyone else is never taken over: anybody
/// who may comment (a fork's author included) can post the marker first, and editing theirs
/// would hide the verdict in a comment they control.
pub fn sticky_comment<'a>(comments: &'a [IssueComment], author: &str) -> Option<&'a IssueComment> {
    comments.iter().find(|comment| {
        comment
            .user
            .as_ref()
            .is_some_and(|user| user.login.eq_ignore_ascii_case(author))
            && comment
                .body
                .as_deref()
                .is_some_and(|body| body.starts_with(STICKY_MARKER))
    })
}

/// The rate-limit headers of an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `retry-after`: seconds to wait.
    pub retry_after: Option<String>,
    /// `x-ratelimit-remaining`: requests left in the window.
    pub remaining: Option<String>,
    /// `x-ratelimit-reset`: when the window resets, in seconds since the Unix epoch.
    pub reset: Option<String>,
}

/// What an answer means for the publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerClass {
    Success,
    /// 5xx, or a rate limit (429, or 403 with `retry-after` or no requests remaining): worth
    /// another attempt, after `wait` when GitHub named one.
    Transient {
        wait: Option<Duration>,
        rate_limited: bool,
    },
    /// 403 that is not a rate limit: this token may not do this.
    Forbidden,
    /// Any other status: another attempt would be refused the same way.
    Refused,
}

/// Classifies an answer by its status and rate-limit headers (`now` for a reset time).
pub fn classify_answer(status: u16, limits: &RateLimitHeaders, now: SystemTime) -> AnswerClass {
    let retry_after = limits
        .retry_after
        .as_deref()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let exhausted = limits.remaining.as_deref().map(str::trim) == Some("0");
    let until_reset = || {
        let reset = limits.reset.as_deref()?.trim().parse::<u64>().ok()?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(Duration::from_secs(reset.saturating_sub(now)))
    };
    match status {
        200..=299 => AnswerClass::Success,
        403 | 429 if retry_after.is_some() || exhausted => AnswerClass::Transient {
            wait: retry_after.or_else(|| if exhausted { until_reset() } else { None }),
            rate_limited: true,
        },
        429 => AnswerClass::Transient {
            wait: None,
            rate_limited: true,
        },
        403 => AnswerClass::Forbidden,
        500..=599 => AnswerClass::Transient {
            wait: None,
            rate_limited: false,
        },
        _ => AnswerClass::Refused,
    }
}

/// Why one request (and so one attempt at the upsert) failed. Every text is redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UpsertFailure {
    Transient {
        detail: String,
        wait: Option<Duration>,
        rate_limited: bool,
    },
    Forbidden {
        detail: String,
    },
    Refused {
        status: u16,
        detail: String,
    },
    Unexpected {
        detail: String,
    },
}

impl fmt::Display for UpsertFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient { detail, .. }
            | Self::Forbidden { detail }
            | Self::Refused { detail, .. }
            | Self::Unexpected { detail } => f.write_str(detail),
        }
    }
}

/// A comment the upsert wrote.
enum CommentWritten {
    Created { url: Option<String> },
    Updated { id: u64, url: Option<String> },
}

impl CommentWritten {
    fn on(self, pr: u64) -> Published {
        match self {
            Self::Created { url } => Published::Created { pr, url },
            Self::Updated { id, url } => Published::Updated {
                pr,
                comment_id: id,
                url,
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Get,
    Post,
    Patch,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
        })
    }
}

/// The part of a pull request that `--from-artifact` checks.
#[derive(Deserialize)]
struct PullRequestHead {
    head: CommitRef,
}

#[derive(Deserialize)]
struct CommitRef {
    sha: String,
}

/// The issue comments of one repository, through octocrab.
struct GitHub {
    octocrab: Octocrab,
    token: Token,
    /// `owner/name`.
    repository: String,
    api_url: String,
    retry: RetryPolicy,
    comment_author: String,
}

impl GitHub {
    /// A client for the environment's API, token and repository; a missing or malformed one is
    /// an error naming the variable.
    fn connect(environment: &PublishEnvironment) -> Result<Self, PublishError> {
        let token = environment
            .token
            .clone()
            .ok_or(PublishError::MissingEnvironment {
                variable: "GITHUB_TOKEN",
                needed_for: "a token is needed to comment on the pull request",
                fix: "in a workflow, pass `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` (with `permissions: pull-requests: write`); elsewhere, export a token that may write issues and pull requests",
            })?;
        let repository =
            environment
                .repository
                .clone()
                .ok_or(PublishError::MissingEnvironment {
                    variable: "GITHUB_REPOSITORY",
                    needed_for: "it names the repository of the pull request",
                    fix: "export GITHUB_REPOSITORY=owner/name (GitHub Actions sets it)",
                })?;
        let valid_part = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !matches!(repository.split_once('/'), Some((owner, name)) if valid_part(owner) && valid_part(name))
        {
            return Err(PublishError::InvalidEnvironment {
                variable: "GITHUB_REPOSITORY",
                value: token.redact(&repository),
                problem: "not `owner/name`".to_owned(),
                fix: "export GITHUB_REPOSITORY=owner/name (GitHub Actions sets it)",
            });
        }
        let api_url = environment.api_url.trim_end_matches('/').to_owned();
        let invalid_url = |problem: String| PublishError::InvalidEnvironment {
            variable: "GITHUB_API_URL",
            value: token.redact(&api_url),
            problem,
            fix: "unset it (https://api.github.com) or set the REST API's URL, such as https://github.example.com/api/v3",
        };
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(invalid_url("not an http(s) URL".to_owned()));
        }
        let octocrab = Octocrab::builder()
            .base_uri(api_url.as_str())
            .map_err(|error| invalid_url(token.redact(&error_text(&error))))?
            .personal_token(token.0.clone())
            .build()
            .map_err(|error| PublishError::Client {
                detail: token.redact(&error_text(&error)),
            })?;
        Ok(Self {
            octocrab,
            token,
            repository,
            api_url,
            retry: environment.retry,
            comment_author: environment.comment_author.clone(),
        })
    }

    /// Creates or updates the sticky comment on `pr`, retrying the whole upsert (list, then
    /// update or create) with exponential backoff while failures are transient. A retried
    /// attempt lists the comments again, so a comment that an attempt created although its
    /// answer was lost is updated, not posted twice.
    async fn upsert_sticky_comment(
        &self,
        pr: u64,
        body: &str,
    ) -> Result<CommentWritten, UpsertFailure> {
        let policy = self.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.first_delay)
            .with_max_delay(policy.longest_wait())
            .with_max_times(policy.attempts.saturating_sub(1) as usize);
        let mut attempt = 1;
        (|| self.upsert_once(pr, body))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|failure| matches!(failure, UpsertFailure::Transient { .. }))
            .adjust(|failure, planned| match (failure, planned) {
                (
                    UpsertFailure::Transient {
                        wait: Some(wait), ..
                    },
                    Some(planned),
                ) => Some((*wait).max(planned).min(policy.longest_wait())),
                _ => planned,
            })
            .notify(|failure, delay| {
                attempt += 1;
                eprintln!(
                    "publish: {failure}; attempt {attempt} of {} in {:.1} s",
                    policy.attempts,
                    delay.as_secs_f64()
                );
            })
            .await
    }

    /// One attempt: every page of the pull request's comments, then an update of the sticky
    /// comment or a new one.
    async fn upsert_once(&self, pr: u64, body: &str) -> Result<CommentWritten, UpsertFailure> {
        let comments = self.list_comments(pr).await?;
        let payload = serde_json::json!({ "body": body });
        match sticky_comment(&comments, &self.comment_author) {
            Some(existing) => {
                let path = format!("/repos/{}/issues/comments/{}", self.repository, existing.id);
                let updated: IssueComment = self.send(Verb::Patch, &path, Some(&payload)).await?;
                Ok(CommentWritten::Updated {
                    id: existing.id,
                    url: updated.html_url.map(|url| self.token.redact(&url)),
                })
            }
            None => {
                let path = format!("/repos/{}/issues/{pr}/comments", self.repository);
                let created: IssueComment = self.send(Verb::Post, &path, Some(&payload)).await?;
                Ok(CommentWritten::Created {
                    url: created.html_url.map(|url| self.token.redact(&url)),
                })
            }
        }
    }

    /// All comments of `pr`, 100 a page, following the `next` links GitHub sends. Only a
    /// link's path is followed, on the configured API's host: the token goes nowhere else.
    async fn list_comments(&self, pr: u64) -> Result<Vec<IssueComment>, UpsertFailure> {
        let mut path = format!(
            "/repos/{}/issues/{pr}/comments?per_page={COMMENTS_PER_PAGE}",
            self.repository
        );
        let mut comments = Vec::new();
        for _ in 0..MAX_COMMENT_PAGES {
            let mut page: Page<IssueComment> = self.send(Verb::Get, &path, None).await?;
            comments.append(&mut page.items);
            let Some(next) = page.next else {
                return Ok(comments);
            };
            path = next
                .path_and_query()
                .map(|path| path.as_str().to_owned())
                .ok_or_else(|| UpsertFailure::Unexpected {
                    detail: self
                        .token
                        .redact(&format!("a `next` link without a path: {next}")),
                })?;
        }
        Err(UpsertFailure::Unexpected {
            detail: format!(
                "more than {MAX_COMMENT_PAGES} pages of comments on PR #{pr} (links that loop?)"
            ),
        })
    }

    /// One request; its answer, classified, and on success parsed as `T`. A request without a
    /// whole answer within [`REQUEST_TIMEOUT`] failed (transiently).
    async fn send<T: FromResponse>(
        &self,
        verb: Verb,
        path: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<T, UpsertFailure> {
        let what = self.token.redact(&format!("{verb} {path}"));
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.send_unbounded(verb, path, payload, &what),
        )
        .await
        .unwrap_or_else(|_| {
            Err(UpsertFailure::Transient {
                detail: format!("{what}: no answer in {} s", REQUEST_TIMEOUT.as_secs()),
                wait: None,
                rate_limited: false,
            })
        })
    }

    async fn send_unbounded<T: FromResponse>(
        &self,
        verb: Verb,
        path: &str,
        payload: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<T, UpsertFailure> {
        let sent = match verb {
            Verb::Get => self.octocrab._get(path).await,
            Verb::Post => self.octocrab._post(path, payload).await,
            Verb::Patch => self.octocrab._patch(path, payload).await,
        };
        let response = sent.map_err(|error| UpsertFailure::Transient {
            detail: format!("{what}: {}", self.token.redact(&error_text(&error))),
            wait: None,
            rate_limited: false,
        })?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let limits = RateLimitHeaders {
            retry_after: header("retry-after"),
            remaining: header("x-ratelimit-remaining"),
            reset: header("x-ratelimit-reset"),
        };
        let class = classify_answer(status.as_u16(), &limits, SystemTime::now());
        if class == AnswerClass::Success {
            return T::from_response(response)
                .await
                .map_err(|error| UpsertFailure::Unexpected {
                    detail: format!("{what}: {}", self.token.redact(&error_text(&error))),
                });
        }
        let message = self
            .octocrab
            .body_to_string(response)
            .await
            .map(|body| github_message(&body))
            .unwrap_or_default();
        let detail = self.token.redact(&format!(
            "{what} answered {status}{}",
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ));
        Err(match class {
            AnswerClass::Success => unreachable!("handled above"),
            AnswerClass::Transient { wait, rate_limited } => UpsertFailure::Transient {
                detail,
                wait,
                rate_limited,
            },
            AnswerClass::Forbidden => UpsertFailure::Forbidden { detail },
            AnswerClass::Refused => UpsertFailure::Refused {
                status: status.as_u16(),
                detail,
            },
        })
    }

    /// Checks that pull request `pr`'s head is `run_head`, the commit of the run that saved
    /// the artifact naming it.
    async fn check_pull_request_head(&self, pr: u64, run_head: &str) -> Result<(), PublishError> {
        let path = format!("/repos/{}/pulls/{pr}", self.repository);
        let pull: PullRequestHead =
            self.send(Verb::Get, &path, None)
                .await
                .map_err(|failure| PublishError::Refused {
                    action: format!("read PR #{pr} of {}", self.repository),
                    detail: failure.to_string(),
                    fix: "give the token `permissions: pull-requests: read`, and check that the artifact's PR exists".to_owned(),
                })?;
        if pull.head.sha.eq_ignore_ascii_case(run_head) {
            Ok(())
        } else {
            Err(PublishError::ArtifactOfAnotherHead {
                pr,
                pr_head: self.token.redact(&pull.head.sha),
                run_head: run_head.to_owned(),
            })
        }
    }

    /// The error of a failed upsert on `pr`, with what to do about it.
    fn error(&self, failure: UpsertFailure, pr: u64, rerun: &str) -> PublishError {
        let action = format!("comment on PR #{pr} of {}", self.repository);
        match failure {
            UpsertFailure::Transient {
                detail,
                rate_limited,
                ..
            } => PublishError::GaveUp {
                action: format!(
                    "publish the perf comment on PR #{pr} of {}",
                    self.repository
                ),
                attempts: self.retry.attempts,
                detail,
                fix: if rate_limited {
                    format!(
                        "GitHub's rate limit for this token is used up: run `{rerun}` again once it resets (`x-ratelimit-reset`)"
                    )
                } else {
                    format!(
                        "GitHub or the network failed: run `{rerun}` again later (and see https://www.githubstatus.com)"
                    )
                },
            },
            UpsertFailure::Forbidden { detail } => PublishError::Refused {
                action,
                detail,
                fix: "give the token `pull-requests: write`".to_owned(),
            },
            UpsertFailure::Refused { status, detail } => PublishError::Refused {
                action,
                detail,
                fix: match status {
                    401 => {
                        "GITHUB_TOKEN was not accepted: pass a valid, unexpired token".to_owned()
                    }
                    404 => format!(
                        "check that PR #{pr} exists in {} (--pr, GITHUB_REPOSITORY) and that the token can see the repository",
                        self.repository
                    ),
                    _ => "see GitHub's message above".to_owned(),
                },
            },
            UpsertFailure::Unexpected { detail } => PublishError::Unexpected {
                action,
                detail,
                api_url: self.token.redact(&self.api_url),
            },
        }
    }
}

/// GitHub's `message` in an error's JSON body, else the body's first line (at most 300
/// characters of either).
fn github_message(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.lines().next().unwrap_or_default().to_owned());
    message.chars().take(300).collect()
}

/// An error and its causes on one line, each cause's first line only (octocrab puts
/// backtraces on the lines after).
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        let line = text.lines().next().unwrap_or_default().trim().to_owned();
        if !line.is_empty()
            && !parts
                .last()
                .is_some_and(|last: &String| last.contains(&line))
        {
            parts.push(line);
        }
        next = error.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    //! The pure parts on plain values; publishing against a local GitHub stand-in is tested in
    //! `xtask/tests/publish.rs`.

    use super::*;

    fn comment(id: u64, body: &str, kind: &str) -> IssueComment {
        IssueComment {
            id,
            body: Some(body.to_owned()),
            user: Some(CommentAuthor {
                login: format!("{kind}-{id}"),
                kind: kind.to_owned(),
            }),
            html_url: None,
        }
    }

    /// Issue 13, defect 6: the first marked comment by anyone was edited, so a fork's author
    /// who posted the marker first took the verdict over.
    #[test]
    fn the_sticky_comment_is_only_ever_one_the_token_wrote_starting_with_the_marker() {
        let quoted = format!("as the bot said: {STICKY_MARKER}");
        let ours = format!("{STICKY_MARKER}\n## Performance");
        let mut planted = comment(2, &ours, "User");
        planted.user.as_mut().unwrap().login = "fork-author".to_owned();
        let mut other_bot = comment(3, &ours, "Bot");
        other_bot.user.as_mut().unwrap().login = "some-app[bot]".to_owned();
        let mut bot_quoting = comment(4, &quoted, "Bot");
        bot_quoting.user.as_mut().unwrap().login = DEFAULT_COMMENT_AUTHOR.to_owned();
        let mut real = comment(5, &ours, "Bot");
        real.user.as_mut().unwrap().login = DEFAULT_COMMENT_AUTHOR.to_owned();
        let comments = [
            comment(1, "LGTM", "User"),
            planted,
            other_bot,
            bot_quoting,
            real,
        ];
        let author = DEFAULT_COMMENT_AUTHOR;
        assert_eq!(sticky_comment(&comments, author).map(|c| c.id), Some(5));
        assert!(sticky_comment(&comments[..4], author).is_none());
        assert_eq!(
            sticky_comment(&comments, "some-app[bot]").map(|c| c.id),
            Some(3)
        );
    }

    #[test]
    fn rate_limits_and_server_errors_are_transient_a_plain_403_is_forbidden() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let headers = |retry_after: Option<&str>, remaining: Option<&str>, reset: Option<&str>| {
            RateLimitHeaders {
                retry_after: retry_after.map(str::to_owned),
                remaining: remaining.map(str::to_owned),
                reset: reset.map(str::to_owned),
            }
        };
        let none = RateLimitHeaders::default();
        assert_eq!(classify_answer(201, &none, now), AnswerClass::Success);
        assert_eq!(
            classify_answer(502, &none, now),
            AnswerClass::Transient {
                wait: None,
                rate_limited: false
            }
        );
        assert_eq!(
            classify_answer(403, &headers(None, Some("0"), Some("1030")), now),
            AnswerClass::Transient {
                wait: Some(Duration::from_secs(30)),
                rate_limited: true
            },
            "the primary rate limit: wait for its reset"
        );
        assert_eq!(
            classify_answer(403, &headers(Some("7"), Some("4000"), None), now),
            AnswerClass::Transient {
                wait: Some(Duration::from_secs(7)),
                rate_limited: true
            },
            "a secondary rate limit names its wait"
        );
        assert_eq!(
            classify_answer(429, &none, now),
            AnswerClass::Transient {
                wait: None,
                rate_limited: true
            }
        );
        assert_eq!(
            classify_answer(403, &headers(None, Some("4999"), Some("1030")), now),
            AnswerClass::Forbidden,
            "GitHub sends rate-limit headers on every answer; only 0 remaining is a limit"
        );
        assert_eq!(classify_answer(404, &none, now), AnswerClass::Refused);
        assert_eq!(classify_answer(401, &none, now), AnswerClass::Refused);
    }

    #[test]
    fn the_pull_request_is_the_events_pull_request_number_else_its_number() {
        let pull_request = serde_json::json!({ "number": 3, "pull_request": { "number": 7 } });
        assert_eq!(pull_request_number(&pull_request), Some(7));
        assert_eq!(
            pull_request_number(&serde_json::json!({ "number": 9 })),
            Some(9)
        );
        let push = serde_json::json!({ "ref": "refs/heads/main", "head_commit": {} });
        assert_eq!(pull_request_number(&push), None);
    }

    #[test]
    fn the_token_is_in_no_debug_output_and_is_redacted_from_texts() {
        let token = Token::new("ghs_0123456789abcdef");
        let environment = PublishEnvironment::from_lookup(|name| match name {
            "GITHUB_TOKEN" => Some("ghs_0123456789abcdef".to_owned()),
            _ => None,
        })
        .unwrap();
        assert!(!format!("{environment:?}").contains("ghs_0123456789abcdef"));
        assert_eq!(
            token.redact("Bearer ghs_0123456789abcdef was refused"),
            "Bearer *** was refused"
        );
    }

    #[test]
    fn the_environment_has_defaults_and_a_bad_retry_delay_is_named() {
        let environment = PublishEnvironment::from_lookup(|_| None).unwrap();
        assert_eq!(environment.api_url, DEFAULT_API_URL);
        assert_eq!(environment.retry, RetryPolicy::default());
        assert!(environment.token.is_none() && environment.repository.is_none());
        let fast = PublishEnvironment::from_lookup(|name| {
            (name == RETRY_BASE_ENV).then(|| "5".to_owned())
        })
        .unwrap();
        assert_eq!(fast.retry.first_delay, Duration::from_millis(5));
        let error = PublishEnvironment::from_lookup(|name| {
            (name == RETRY_BASE_ENV).then(|| "soon".to_owned())
        })
        .unwrap_err();
        assert!(error.to_string().contains(RETRY_BASE_ENV), "{error}");
    }

    /// `report.md` as `perf` renders it: `regressions` counts that grew, `improvements`
    /// that shrank and `unchanged` that stayed, on fixed commits.
    fn report_markdown(regressions: usize, improvements: usize, unchanged: usize) -> String {
        use crate::record::{Metric, MetricKind, Suite, Unit, test_record};
        let metric = |i: usize, value: f64| Metric {
            name: format!("io/scenario_{i:04}/sql_statements"),
            suite: Suite::IoCounts,
            unit: Unit::Statements,
            kind: MetricKind::Deterministic,
            value,
            interval: None,
            samples: Vec::new(),
            shape: None,
        };
        let all = regressions + improvements + unchanged;
        let base = test_record(
            "1111111111111111111111111111111111111111",
            (0..all).map(|i| metric(i, 100.0)).collect(),
        );
        let head = test_record(
            "2222222222222222222222222222222222222222",
            (0..all)
                .map(|i| {
                    let value = if i < regressions {
                        101.0
                    } else if i < regressions + improvements {
                        90.0
                    } else {
                        100.0
                    };
                    metric(i, value)
                })
                .collect(),
        );
        let comparison = crate::compare::compare(&base, &head, &Default::default());
        render::markdown(&render::Report {
            head: &head,
            baseline: render::BaselineDisclosure::Used {
                commit: base.commit.clone(),
                how_chosen: "merge-base of HEAD and refs/heads/main".to_owned(),
                source: "stored record on perf-baselines".to_owned(),
                passed_over: Vec::new(),
            },
            comparison: Some(&comparison),
            budgets: &[],
            record_path: None,
        })
    }

    /// The sticky comment's body for a report that fits: the marker, then `report.md` as is.
    #[test]
    fn comment_body_snapshot() {
        let markdown = report_markdown(1, 1, 2);
        let body = comment_body(&markdown);
        assert_eq!(body, format!("{STICKY_MARKER}\n{markdown}"));
        insta::assert_snapshot!(body);
    }

    /// The body for a report over GitHub's limit: the marker, the headline, every
    /// regression, as many other rows as fit, and lines counting the rows left out.
    #[test]
    fn oversize_comment_body_snapshot() {
        let markdown = report_markdown(20, 600, 900);
        assert!(
            markdown.len() > GITHUB_COMMENT_MAX_CHARS,
            "{}",
            markdown.len()
        );
        let body = comment_body(&markdown);
        assert!(body.len() <= GITHUB_COMMENT_MAX_CHARS, "{}", body.len());
        assert!(body.contains("row(s) of this table left out"), "{body}");
        insta::assert_snapshot!(body);
    }

    #[test]
    fn the_comment_body_starts_with_the_marker_once_and_fits() {
        let body = comment_body("## Performance: No regression\n");
        assert_eq!(
            body,
            format!("{STICKY_MARKER}\n## Performance: No regression\n")
        );
        assert_eq!(
            comment_body(&body),
            body,
            "an artifact's body keeps one marker"
        );
        let huge = format!("## Performance\n\n{}", "x".repeat(200_000));
        let fitted = comment_body(&huge);
        assert!(fitted.starts_with(STICKY_MARKER));
        assert!(fitted.chars().count() <= GITHUB_COMMENT_MAX_CHARS);
    }
}
