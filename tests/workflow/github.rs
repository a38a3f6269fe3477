//! A stateful local stand-in for GitHub's REST API (wiremock with one `Respond` over shared
//! state), serving what the workflows and `cargo xtask perf publish` call: a pull request's
//! issue comments (listed in pages of `per_page` with `Link` headers that name the repository
//! by id, as GitHub does; created; updated with `PATCH /repos/o/r/issues/comments/ID`) and
//! `GET /repos/o/r/pulls/N` (its head). Tokens: a job's write token, and a fork pull
//! request's read-only token, refused on writes with GitHub's 403 "Resource not accessible by
//! integration". Comments made through a token are written by `github-actions[bot]` (type
//! Bot). Every request it does not serve is kept and answered 404, so a test can assert that
//! nothing unexpected was asked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const OWNER: &str = "octo";
pub const NAME: &str = "widgets";
pub const REPOSITORY: &str = "octo/widgets";
/// GitHub's `Link` headers name a repository by id.
pub const REPOSITORY_ID: u64 = 1_300_192;
/// The login of comments made with a workflow's token.
pub const BOT: &str = "github-actions[bot]";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Write,
    /// A fork pull request's token: reads only.
    ReadOnly,
}

/// One issue comment as the stand-in holds it.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub login: String,
    pub body: String,
    /// How often it was edited.
    pub edits: u32,
}

#[derive(Default)]
struct State {
    tokens: BTreeMap<String, Access>,
    /// Pull request number → head sha.
    pulls: BTreeMap<u64, Value>,
    comments: Vec<Comment>,
    next_id: u64,
    unexpected: Vec<String>,
    writes_refused: u32,
}

/// The stand-in; dropped with the server.
pub struct GitHub {
    runtime: tokio::runtime::Runtime,
    server: Option<MockServer>,
    state: Arc<Mutex<State>>,
}

#[derive(Clone)]
struct Responder {
    base_url: String,
    state: Arc<Mutex<State>>,
}

impl GitHub {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the GitHub stand-in");
        let state = Arc::new(Mutex::new(State {
            next_id: 2_000_000_001,
            ..State::default()
        }));
        let server = runtime.block_on(async {
            let server = MockServer::start().await;
            Mock::given(any())
                .respond_with(Responder {
                    base_url: server.uri(),
                    state: state.clone(),
                })
                .mount(&server)
                .await;
            server
        });
        Self {
            runtime,
            server: Some(server),
            state,
        }
    }

    /// `GITHUB_API_URL` for the jobs.
    pub fn url(&self) -> String {
        self.server.as_ref().expect("running").uri()
    }

    /// A new token with `access`.
    pub fn token(&self, access: Access) -> String {
        let mut state = self.state.lock().unwrap();
        let token = format!("ghs_standin{:04}{}", state.tokens.len(), "x".repeat(24));
        state.tokens.insert(token.clone(), access);
        token
    }

    /// Opens or moves pull request `number` (`pull_request` JSON as in an event).
    pub fn set_pull(&self, number: u64, pull_request: Value) {
        self.state
            .lock()
            .unwrap()
            .pulls
            .insert(number, pull_request);
    }

    pub fn comments(&self, issue: u64) -> Vec<Comment> {
        let state = self.state.lock().unwrap();
        state
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }

    /// Writes refused to a read-only token so far.
    pub fn writes_refused(&self) -> u32 {
        self.state.lock().unwrap().writes_refused
    }

    /// Requests it did not serve so far (method and path).
    pub fn unexpected(&self) -> Vec<String> {
        self.state.lock().unwrap().unexpected.clone()
    }
}

impl Drop for GitHub {
    fn drop(&mut self) {
        let server = self.server.take();
        self.runtime.block_on(async move { drop(server) });
    }
}

fn answer(status: u16) -> ResponseTemplate {
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

impl Responder {
    fn comment_json(&self, comment: &Comment) -> Value {
        json!({
            "id": comment.id,
            "node_id": format!("IC_{}", comment.id),
            "url": format!("{}/repos/{REPOSITORY}/issues/comments/{}", self.base_url, comment.id),
            "html_url": format!("https://github.com/{REPOSITORY}/pull/{}#issuecomment-{}", comment.issue, comment.id),
            "body": comment.body,
            "user": {
                "login": comment.login,
                "id": 41898282,
                "type": if comment.login.ends_with("[bot]") { "Bot" } else { "User" },
            },
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "author_association": "NONE",
        })
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let path = request.url.path().to_owned();
        let verb = request.method.as_str().to_owned();
        let token = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("token "))
            })
            .map(str::to_owned);
        let Some(access) = token.and_then(|token| state.tokens.get(&token).copied()) else {
            return answer(401).set_body_json(json!({
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
            }));
        };
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let repo_prefix = match parts.as_slice() {
            ["repos", owner, name, ..] if *owner == OWNER && *name == NAME => 3,
            ["repositories", id, ..] if *id == REPOSITORY_ID.to_string() => 2,
            _ => 0,
        };
        let rest: &[&str] = if repo_prefix == 0 {
            &[]
        } else {
            &parts[repo_prefix..]
        };
        let refuse_write = |state: &mut State| {
            state.writes_refused += 1;
            answer(403).set_body_json(json!({
                "message": "Resource not accessible by integration",
                "documentation_url": "https://docs.github.com/rest/issues/comments",
                "status": "403",
            }))
        };
        match (verb.as_str(), rest) {
            ("GET", ["issues", number, "comments"]) => {
                let Ok(issue) = number.parse::<u64>() else {
                    return answer(404).set_body_json(json!({ "message": "Not Found" }));
                };
                let all: Vec<Value> = state
                    .comments
                    .iter()
                    .filter(|c| c.issue == issue)
                    .map(|c| self.comment_json(c))
                    .collect();
                let per_page = query(request, "per_page").unwrap_or(30).clamp(1, 100);
                let page = query(request, "page").unwrap_or(1).max(1);
                let pages = all.len().div_ceil(per_page).max(1);
                let start = ((page - 1) * per_page).min(all.len());
                let end = (page * per_page).min(all.len());
                let link = |page: usize, rel: &str| {
                    format!(
                        "<{}/repositories/{REPOSITORY_ID}/issues/{issue}/comments?per_page={per_page}&page={page}>; rel=\"{rel}\"",
                        self.base_url
                    )
                };
                let mut links = Vec::new();
                if page > 1 {
                    links.push(link(page - 1, "prev"));
                }
                if page < pages {
                    links.push(link(page + 1, "next"));
                    links.push(link(pages, "last"));
                }
                if page > 1 {
                    links.push(link(1, "first"));
                }
                let mut response = answer(200).set_body_json(&all[start..end]);
                if !links.is_empty() {
                    response = response.insert_header("link", links.join(", "));
                }
                response
            }
            ("POST", ["issues", number, "comments"]) => {
                if access == Access::ReadOnly {
                    return refuse_write(&mut state);
                }
                let Ok(issue) = number.parse::<u64>() else {
                    return answer(404).set_body_json(json!({ "message": "Not Found" }));
                };
                if !state.pulls.contains_key(&issue) {
                    return answer(404).set_body_json(json!({ "message": "Not Found" }));
                }
                let body: Value = request.body_json().expect("a JSON comment");
                let id = state.next_id;
                state.next_id += 1;
                let comment = Comment {
                    id,
                    issue,
                    login: BOT.to_owned(),
                    body: body["body"].as_str().expect("a body").to_owned(),
                    edits: 0,
                };
                let json = self.comment_json(&comment);
                state.comments.push(comment);
                answer(201).set_body_json(json)
            }
            ("PATCH", ["issues", "comments", id]) => {
                if access == Access::ReadOnly {
                    return refuse_write(&mut state);
                }
                let body: Value = request.body_json().expect("a JSON comment");
                let id: Option<u64> = id.parse().ok();
                match state.comments.iter_mut().find(|c| Some(c.id) == id) {
                    Some(comment) => {
                        comment.body = body["body"].as_str().expect("a body").to_owned();
                        comment.edits += 1;
                        let comment = comment.clone();
                        answer(200).set_body_json(self.comment_json(&comment))
                    }
                    None => answer(404).set_body_json(json!({ "message": "Not Found" })),
                }
            }
            ("GET", ["pulls", number]) => {
                match number.parse::<u64>().ok().and_then(|n| state.pulls.get(&n)) {
                    Some(pull) => answer(200).set_body_json(pull.clone()),
                    None => answer(404).set_body_json(json!({ "message": "Not Found" })),
                }
            }
            _ => {
                state.unexpected.push(format!("{verb} {}", request.url));
                answer(404).set_body_json(json!({ "message": "Not Found" }))
            }
        }
    }
}
