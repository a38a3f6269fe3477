//! A runner of this repository's GitHub Actions workflows, for the lifecycle test: for an
//! event (a push, a pull request's action with its labels, a `workflow_run` completed) it reads
//! `.github/workflows/*.yml` of the commit under test ([`model`]), selects the workflows whose
//! `on:` matches, evaluates each job's `if:` and runs its steps in order as a GitHub-hosted
//! runner does: `run:` with `bash --noprofile --norc -eo pipefail {0}` in the job's workspace;
//! step `env:`, `if:` (default `success()`), `continue-on-error`, `id` outcomes and outputs
//! (`GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH`); `uses:` through [`actions`]; the job's
//! environment (event file, `GITHUB_*`, `RUNNER_*`, `CI`, a home of its own, the machine's
//! toolchain) and a post phase. Expressions are [`expr`]'s, the API is [`github`]'s stand-in.
//! A completed run triggers the `workflow_run` workflows that listen for it, as GitHub does.
//!
//! Jobs run one at a time, each in the same workspace path (`<root>/work/widgets/widgets`, as
//! on a hosted runner), cleared before its checkout and left after it for the test to
//! inspect. Concurrency groups are evaluated (their expressions must be understood), but as
//! runs never overlap here, none is cancelled.

pub mod actions;
pub mod expr;
pub mod github;
pub mod model;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::github::{Access, GitHub};
use self::model::{StepKind, Workflow};

pub const DEFAULT_BRANCH: &str = "main";

/// A pull request as the events carry it.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub number: u64,
    pub head_sha: String,
    /// The head branch's name.
    pub head_ref: String,
    /// The branch it goes into.
    pub base_ref: String,
    pub labels: Vec<String>,
    /// From a fork: its job gets a read-only token.
    pub fork: bool,
    pub author: String,
}

/// What happened, as GitHub would deliver it.
#[derive(Debug, Clone)]
pub enum Event {
    Push {
        branch: String,
        before: String,
        after: String,
        pusher: String,
    },
    PullRequest {
        /// `opened`, `synchronize`, `labeled` ...
        action: String,
        pull: PullRequest,
        /// Who did it (`GITHUB_ACTOR`).
        sender: String,
        /// The label of `labeled` / `unlabeled`.
        label: Option<String>,
    },
}

/// One step as it ran.
#[derive(Debug, Clone)]
pub struct StepRun {
    pub name: String,
    pub id: Option<String>,
    /// `success`, `failure` or `skipped`.
    pub outcome: String,
    pub conclusion: String,
    pub exit_code: Option<i32>,
    /// What the step printed (stdout and stderr), or the action's log.
    pub log: String,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct JobRun {
    pub id: String,
    /// `success`, `failure`, `skipped` or `cancelled` (a matrix leg after a failed one).
    pub conclusion: String,
    pub steps: Vec<StepRun>,
    /// The job summary (`GITHUB_STEP_SUMMARY` of every step).
    pub summary: String,
    /// `outputs:` as evaluated after the steps.
    pub outputs: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct WorkflowRun {
    pub id: u64,
    pub workflow: String,
    pub event: String,
    pub head_sha: String,
    pub conclusion: String,
    pub jobs: Vec<JobRun>,
}

impl WorkflowRun {
    /// The step named `name` of any job.
    pub fn step(&self, name: &str) -> &StepRun {
        self.jobs
            .iter()
            .flat_map(|job| &job.steps)
            .find(|step| step.name == name)
            .unwrap_or_else(|| panic!("run {} of {} has no step {name:?}", self.id, self.workflow))
    }

    /// Every step named `name`, of every job (a matrix's legs each have theirs).
    pub fn steps_named(&self, name: &str) -> Vec<&StepRun> {
        self.jobs
            .iter()
            .flat_map(|job| &job.steps)
            .filter(|step| step.name == name)
            .collect()
    }

    /// The job (or matrix leg) named `id`, as `describe` shows it (`measure (2)`).
    pub fn job(&self, id: &str) -> &JobRun {
        self.jobs
            .iter()
            .find(|job| job.id == id)
            .unwrap_or_else(|| panic!("run {} of {} has no job {id:?}", self.id, self.workflow))
    }

    /// Every step's name, outcome and exit code, for failure messages.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "workflow {} run {} ({} at {}): {}\n",
            self.workflow, self.id, self.event, self.head_sha, self.conclusion
        );
        for job in &self.jobs {
            text.push_str(&format!("  job {}: {}\n", job.id, job.conclusion));
            for step in &job.steps {
                text.push_str(&format!(
                    "    {} -> {} (exit {:?}, {:.0} s)\n",
                    step.name, step.outcome, step.exit_code, step.seconds
                ));
            }
        }
        text
    }

    /// `describe()` with the logs of steps that failed or match `name`.
    pub fn describe_with_log(&self, name: &str) -> String {
        let mut text = self.describe();
        for job in &self.jobs {
            for step in &job.steps {
                if step.outcome == "failure" || step.name == name {
                    text.push_str(&format!("--- log of {} ---\n{}\n", step.name, step.log));
                }
            }
        }
        text
    }
}

/// The emulated GitHub: the bare `origin`, the API stand-in, caches, artifacts, run ids.
pub struct Runner {
    root: PathBuf,
    pub origin: PathBuf,
    pub github: GitHub,
    pub stores: actions::Stores,
    /// Variables every job gets from the machine (a self-hosted runner's environment).
    pub machine_env: Vec<(String, String)>,
    next_run_id: u64,
}

impl Runner {
    /// A runner under `root` (which it fills) with an empty bare `origin`.
    pub fn new(root: &Path) -> Self {
        let origin = root.join("origin.git");
        let output = Command::new("git")
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(&origin)
            .output()
            .expect("git init --bare");
        assert!(output.status.success(), "{output:?}");
        // GitHub serves any commit of the repository by id (checkout fetches the event's).
        git_in(
            &origin,
            &["config", "uploadpack.allowAnySHA1InWant", "true"],
        );
        Self {
            root: root.to_path_buf(),
            origin,
            github: GitHub::start(),
            stores: actions::Stores::new(root.join("stores")),
            machine_env: Vec::new(),
            next_run_id: 9_000_001,
        }
    }

    /// The commit `reference` names on origin, if any.
    pub fn origin_ref(&self, reference: &str) -> Option<String> {
        let output = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", reference])
            .current_dir(&self.origin)
            .output()
            .expect("git rev-parse");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Delivers `event`: runs every workflow it triggers, then those the completed runs
    /// trigger (`workflow_run`), and returns them all in order.
    pub fn deliver(&mut self, event: &Event) -> Vec<WorkflowRun> {
        let mut runs = Vec::new();
        let (name, payload, git_ref, sha, actor, access, fallback_scopes) = match event {
            Event::Push {
                branch,
                before,
                after,
                pusher,
            } => (
                "push",
                json!({
                    "ref": format!("refs/heads/{branch}"),
                    "before": before,
                    "after": after,
                    "created": false,
                    "deleted": false,
                    "forced": false,
                    "head_commit": { "id": after },
                    "pusher": { "name": pusher },
                    "repository": repository_json(),
                    "sender": user_json(pusher),
                }),
                format!("refs/heads/{branch}"),
                after.clone(),
                pusher.clone(),
                Access::Write,
                vec![format!("refs/heads/{DEFAULT_BRANCH}")],
            ),
            Event::PullRequest {
                action,
                pull,
                sender,
                label,
            } => {
                let merge = self.prepare_pull_refs(pull);
                let pull_json = self.pull_json(pull, &merge);
                self.github.set_pull(pull.number, pull_json.clone());
                let mut payload = json!({
                    "action": action,
                    "number": pull.number,
                    "pull_request": pull_json,
                    "repository": repository_json(),
                    "sender": user_json(sender),
                });
                if let Some(label) = label {
                    payload["label"] = json!({ "name": label });
                }
                (
                    "pull_request",
                    payload,
                    format!("refs/pull/{}/merge", pull.number),
                    merge,
                    sender.clone(),
                    if pull.fork {
                        Access::ReadOnly
                    } else {
                        Access::Write
                    },
                    vec![
                        format!("refs/heads/{}", pull.base_ref),
                        format!("refs/heads/{DEFAULT_BRANCH}"),
                    ],
                )
            }
        };
        let delivery = Delivery {
            name: name.to_owned(),
            action: payload["action"].as_str().map(str::to_owned),
            payload,
            git_ref,
            sha,
            actor,
            access,
            fallback_scopes,
        };
        self.run_triggered(&delivery, &mut runs);
        runs
    }

    fn run_triggered(&mut self, delivery: &Delivery, runs: &mut Vec<WorkflowRun>) {
        let workflows = self.workflows_at(&delivery.sha);
        for workflow in workflows.iter().filter(|w| triggered(w, delivery)) {
            let run = self.run_workflow(workflow, delivery);
            let completed = run.clone();
            runs.push(run);
            self.after_completion(&completed, delivery, runs);
        }
    }

    /// The `workflow_run` workflows of the default branch that listen for `completed`.
    fn after_completion(
        &mut self,
        completed: &WorkflowRun,
        cause: &Delivery,
        runs: &mut Vec<WorkflowRun>,
    ) {
        let default_ref = format!("refs/heads/{DEFAULT_BRANCH}");
        let Some(default_sha) = self.origin_ref(&default_ref) else {
            return;
        };
        let pull = &cause.payload["pull_request"];
        let fork = pull["head"]["repo"]["fork"].as_bool().unwrap_or(false);
        // GitHub lists no pull requests for a run of a fork's head.
        let pull_requests = if cause.name == "pull_request" && !fork {
            json!([{ "number": pull["number"], "head": pull["head"], "base": pull["base"] }])
        } else {
            json!([])
        };
        let head_branch = match cause.name.as_str() {
            "pull_request" => pull["head"]["ref"].clone(),
            _ => json!(cause.git_ref.trim_start_matches("refs/heads/")),
        };
        let head_sha = match cause.name.as_str() {
            "pull_request" => pull["head"]["sha"].as_str().unwrap().to_owned(),
            _ => cause.sha.clone(),
        };
        let delivery = Delivery {
            name: "workflow_run".to_owned(),
            action: Some("completed".to_owned()),
            payload: json!({
                "action": "completed",
                "workflow_run": {
                    "id": completed.id,
                    "name": completed.workflow,
                    "event": cause.name,
                    "status": "completed",
                    "conclusion": completed.conclusion,
                    "head_sha": head_sha,
                    "head_branch": head_branch,
                    "pull_requests": pull_requests,
                    "head_repository": { "full_name": if fork { "fork/widgets" } else { github::REPOSITORY }, "fork": fork },
                },
                "workflow": { "name": completed.workflow },
                "repository": repository_json(),
                "sender": cause.payload["sender"],
            }),
            git_ref: default_ref.clone(),
            sha: default_sha,
            actor: cause.actor.clone(),
            access: Access::Write,
            fallback_scopes: vec![default_ref],
        };
        let workflows = self.workflows_at(&delivery.sha);
        for workflow in workflows
            .iter()
            .filter(|w| triggered_by_run(w, &completed.workflow) && triggered(w, &delivery))
        {
            let run = self.run_workflow(workflow, &delivery);
            runs.push(run);
        }
    }

    /// The workflow files of commit `sha` on origin.
    fn workflows_at(&self, sha: &str) -> Vec<Workflow> {
        let dir = self.root.join("workflow-files");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let archive = Command::new("git")
            .args(["archive", "--format=tar", sha, ".github/workflows"])
            .current_dir(&self.origin)
            .output()
            .expect("git archive");
        assert!(archive.status.success(), "git archive {sha}: {archive:?}");
        let mut untar = Command::new("tar")
            .args(["-x", "-C"])
            .arg(&dir)
            .stdin(Stdio::piped())
            .spawn()
            .expect("tar");
        use std::io::Write;
        untar
            .stdin
            .take()
            .unwrap()
            .write_all(&archive.stdout)
            .unwrap();
        assert!(untar.wait().unwrap().success());
        model::load_all(&dir)
    }

    /// Makes `refs/pull/N/head` (which must be on origin already, as the pushed head) and
    /// `refs/pull/N/merge`, the head merged into the base branch's tip, as GitHub does; returns
    /// the merge commit.
    fn prepare_pull_refs(&self, pull: &PullRequest) -> String {
        git_in(
            &self.origin,
            &[
                "update-ref",
                &format!("refs/pull/{}/head", pull.number),
                &pull.head_sha,
            ],
        );
        let base = self
            .origin_ref(&format!("refs/heads/{}", pull.base_ref))
            .expect("the base branch is on origin");
        let tree = git_in(
            &self.origin,
            &["merge-tree", "--write-tree", &base, &pull.head_sha],
        );
        let tree = tree.lines().next().unwrap().to_owned();
        let merge = git_in(
            &self.origin,
            &[
                "-c",
                "user.name=GitHub",
                "-c",
                "user.email=noreply@github.com",
                "commit-tree",
                &tree,
                "-p",
                &base,
                "-p",
                &pull.head_sha,
                "-m",
                &format!("Merge {} into {base}", pull.head_sha),
            ],
        );
        git_in(
            &self.origin,
            &[
                "update-ref",
                &format!("refs/pull/{}/merge", pull.number),
                &merge,
            ],
        );
        merge
    }

    fn pull_json(&self, pull: &PullRequest, merge: &str) -> Value {
        let base_sha = self
            .origin_ref(&format!("refs/heads/{}", pull.base_ref))
            .expect("the base branch is on origin");
        let head_repo = if pull.fork {
            json!({ "full_name": format!("{}/widgets", pull.author), "fork": true })
        } else {
            json!({ "full_name": github::REPOSITORY, "fork": false })
        };
        json!({
            "number": pull.number,
            "state": "open",
            "title": format!("PR {}", pull.number),
            "user": user_json(&pull.author),
            "labels": pull.labels.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>(),
            "head": { "sha": pull.head_sha, "ref": pull.head_ref, "label": format!("{}:{}", pull.author, pull.head_ref), "repo": head_repo },
            "base": { "sha": base_sha, "ref": pull.base_ref, "repo": { "full_name": github::REPOSITORY, "fork": false } },
            "merge_commit_sha": merge,
        })
    }

    fn run_workflow(&mut self, workflow: &Workflow, delivery: &Delivery) -> WorkflowRun {
        let id = self.next_run_id;
        self.next_run_id += 1;
        let started = Instant::now();
        eprintln!(
            "workflow: {} run {id} on {} {} at {}",
            workflow.name,
            delivery.name,
            delivery.action.as_deref().unwrap_or(""),
            &delivery.sha[..10]
        );
        let run_dir = self.root.join("runs").join(id.to_string());
        std::fs::create_dir_all(&run_dir).unwrap();
        let event_path = run_dir.join("event.json");
        std::fs::write(
            &event_path,
            serde_json::to_string_pretty(&delivery.payload).unwrap(),
        )
        .unwrap();
        let (api_url, workspace) = (self.github.url(), self.workspace());
        let github_context = |job: &str, token: &str| {
            json!({
                "event": delivery.payload,
                "event_name": delivery.name,
                "event_path": event_path,
                "token": token,
                "ref": delivery.git_ref,
                "ref_name": ref_name(&delivery.git_ref),
                "sha": delivery.sha,
                "repository": github::REPOSITORY,
                "repository_owner": github::OWNER,
                "actor": delivery.actor,
                "triggering_actor": delivery.actor,
                "workflow": workflow.name,
                "job": job,
                "run_id": id.to_string(),
                "run_number": "1",
                "run_attempt": "1",
                "server_url": "https://github.com",
                "api_url": api_url,
                "workspace": workspace,
                "head_ref": delivery.payload["pull_request"]["head"]["ref"].as_str().unwrap_or(""),
                "base_ref": delivery.payload["pull_request"]["base"]["ref"].as_str().unwrap_or(""),
            })
        };
        let mut jobs = Vec::new();
        // Each job's result and outputs, for the jobs that need it.
        let mut finished: Vec<(String, Value)> = Vec::new();
        for job in in_dependency_order(workflow) {
            let access = job_access(workflow, job, delivery.access);
            let token = self.github.token(access);
            let mut context = expr::Context {
                contexts: serde_json::Map::new(),
                status: expr::Status::SUCCEEDED,
                workspace: self.workspace(),
            };
            context
                .contexts
                .insert("github".to_owned(), github_context(&job.id, &token));
            context.contexts.insert("runner".to_owned(), runner_json());
            let needs: serde_json::Map<String, Value> = finished
                .iter()
                .filter(|(id, _)| job.needs.contains(id))
                .cloned()
                .collect();
            context.status = expr::Status {
                success: needs.values().all(|need| need["result"] == "success"),
                failure: needs.values().any(|need| need["result"] == "failure"),
            };
            context
                .contexts
                .insert("needs".to_owned(), Value::Object(needs));
            if let Some(group) = &workflow.concurrency {
                expr::interpolate(group, &context);
            }
            let runs = match job.condition.as_deref() {
                Some(condition) => expr::condition(condition, &context),
                None => context.status.success,
            };
            if !runs {
                eprintln!(
                    "workflow:   job {}: skipped (if: {})",
                    job.id,
                    job.condition.as_deref().unwrap_or("success()")
                );
                jobs.push(JobRun {
                    id: job.id.clone(),
                    conclusion: "skipped".to_owned(),
                    steps: Vec::new(),
                    summary: String::new(),
                    outputs: Vec::new(),
                });
                finished.push((
                    job.id.clone(),
                    json!({ "result": "skipped", "outputs": {} }),
                ));
                continue;
            }
            if let Some(group) = &job.concurrency {
                expr::interpolate(group, &context);
            }
            let legs = matrix_legs(job, &context);
            let total = legs.len();
            let mut outputs = Vec::new();
            let mut result = "success";
            for (index, leg) in legs.into_iter().enumerate() {
                let name = match &leg {
                    Some(values) => format!(
                        "{} ({})",
                        job.id,
                        values
                            .values()
                            .map(expr::to_text)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => job.id.clone(),
                };
                let fail_fast = job.strategy.as_ref().is_none_or(|s| s.fail_fast);
                if result == "failure" && fail_fast {
                    eprintln!("workflow:   job {name}: cancelled (fail-fast)");
                    jobs.push(JobRun {
                        id: name,
                        conclusion: "cancelled".to_owned(),
                        steps: Vec::new(),
                        summary: String::new(),
                        outputs: Vec::new(),
                    });
                    continue;
                }
                let mut leg_context = expr::Context {
                    contexts: context.contexts.clone(),
                    status: expr::Status::SUCCEEDED,
                    workspace: context.workspace.clone(),
                };
                if let Some(values) = leg {
                    leg_context
                        .contexts
                        .insert("matrix".to_owned(), Value::Object(values));
                    leg_context.contexts.insert(
                        "strategy".to_owned(),
                        json!({ "fail-fast": fail_fast, "job-index": index, "job-total": total, "max-parallel": total }),
                    );
                }
                eprintln!("workflow:   job {name}");
                let mut run = self.run_job(
                    workflow,
                    job,
                    delivery,
                    id,
                    &run_dir,
                    &event_path,
                    leg_context,
                );
                run.id = name;
                if run.conclusion == "failure" {
                    result = "failure";
                }
                // A matrix job's outputs: its legs', the later over the earlier (GitHub keeps
                // one leg's; the workflows here read outputs of jobs without a matrix).
                for (key, value) in &run.outputs {
                    outputs.retain(|(k, _): &(String, String)| k != key);
                    outputs.push((key.clone(), value.clone()));
                }
                jobs.push(run);
            }
            finished.push((
                job.id.clone(),
                json!({ "result": result, "outputs": pairs_json(&outputs) }),
            ));
        }
        let conclusion = if jobs
            .iter()
            .any(|job| job.conclusion == "failure" || job.conclusion == "cancelled")
        {
            "failure"
        } else {
            "success"
        };
        crate::append_timing(
            &format!("workflow: {} run {id}: {conclusion}", workflow.name),
            std::time::Duration::ZERO,
            started.elapsed(),
        );
        eprintln!(
            "workflow: {} run {id}: {conclusion} in {:.0} s",
            workflow.name,
            started.elapsed().as_secs_f64()
        );
        WorkflowRun {
            id,
            workflow: workflow.name.clone(),
            event: delivery.name.clone(),
            head_sha: delivery.sha.clone(),
            conclusion: conclusion.to_owned(),
            jobs,
        }
    }

    /// Leaves in the cache, on the default branch, the entry an earlier run of `workflow` (a
    /// file under `checkout`'s `.github/workflows`) would have saved with its `actions/cache`
    /// step, under a key its `restore-keys` find (the first one followed by `seeded`), holding
    /// `contents` for the listed paths they name. Its jobs restore it as the newest match of
    /// their restore keys and save their own exact key after, as on GitHub when a cache of
    /// an older lock file is there.
    pub fn seed_cache(&mut self, checkout: &Path, workflow: &str, contents: Vec<(&str, PathBuf)>) {
        let file = checkout.join(".github/workflows").join(workflow);
        let workflow = model::load(&file);
        let with = workflow
            .jobs
            .iter()
            .flat_map(|job| &job.steps)
            .find_map(|step| match &step.kind {
                StepKind::Uses { action, with, .. } if action == "actions/cache" => Some(with),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{} has no actions/cache step", file.display()));
        let input = |name: &str| {
            with.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("the cache step of {} has no {name}", file.display()))
        };
        let mut contexts = serde_json::Map::new();
        contexts.insert("runner".to_owned(), runner_json());
        let context = expr::Context {
            contexts,
            status: expr::Status::SUCCEEDED,
            workspace: checkout.to_path_buf(),
        };
        let restore_key = expr::interpolate(&input("restore-keys"), &context);
        let prefix = restore_key
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .expect("a restore key");
        let listed: Vec<String> = input("path")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        self.stores.seed_cache(
            &listed,
            &format!("{prefix}seeded"),
            &format!("refs/heads/{DEFAULT_BRANCH}"),
            contents,
        );
    }

    /// The workspace every job uses, as on a hosted runner.
    pub fn workspace(&self) -> PathBuf {
        self.root.join("work").join(github::NAME).join(github::NAME)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_job(
        &mut self,
        workflow: &Workflow,
        job: &model::Job,
        delivery: &Delivery,
        run_id: u64,
        run_dir: &Path,
        event_path: &Path,
        mut context: expr::Context,
    ) -> JobRun {
        let job_dir = run_dir.join(&job.id);
        let home = job_dir.join("home");
        let temp = job_dir.join("temp");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&temp).unwrap();
        let workspace = self.workspace();
        if workspace.exists() {
            std::fs::remove_dir_all(&workspace).unwrap();
        }
        std::fs::create_dir_all(&workspace).unwrap();
        let real_home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| real_home.join(".cargo"));
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| real_home.join(".rustup"));
        let mut path_entries: Vec<PathBuf> =
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), home.display().to_string()),
            ("CARGO_HOME".into(), cargo_home.display().to_string()),
            ("RUSTUP_HOME".into(), rustup_home.display().to_string()),
            ("LANG".into(), "C.UTF-8".into()),
            ("CI".into(), "true".into()),
            ("GITHUB_ACTIONS".into(), "true".into()),
            ("GITHUB_EVENT_NAME".into(), delivery.name.clone()),
            ("GITHUB_EVENT_PATH".into(), event_path.display().to_string()),
            ("GITHUB_ACTOR".into(), delivery.actor.clone()),
            ("GITHUB_TRIGGERING_ACTOR".into(), delivery.actor.clone()),
            ("GITHUB_REF".into(), delivery.git_ref.clone()),
            ("GITHUB_REF_NAME".into(), ref_name(&delivery.git_ref)),
            ("GITHUB_SHA".into(), delivery.sha.clone()),
            ("GITHUB_REPOSITORY".into(), github::REPOSITORY.into()),
            ("GITHUB_REPOSITORY_OWNER".into(), github::OWNER.into()),
            ("GITHUB_API_URL".into(), self.github.url()),
            ("GITHUB_SERVER_URL".into(), "https://github.com".into()),
            ("GITHUB_WORKSPACE".into(), workspace.display().to_string()),
            ("GITHUB_WORKFLOW".into(), workflow.name.clone()),
            ("GITHUB_JOB".into(), job.id.clone()),
            ("GITHUB_RUN_ID".into(), run_id.to_string()),
            ("GITHUB_RUN_NUMBER".into(), "1".into()),
            ("GITHUB_RUN_ATTEMPT".into(), "1".into()),
            ("RUNNER_OS".into(), "Linux".into()),
            ("RUNNER_ARCH".into(), "X64".into()),
            ("RUNNER_TEMP".into(), temp.display().to_string()),
        ];
        if delivery.name == "pull_request" {
            let pull = &delivery.payload["pull_request"];
            env.push((
                "GITHUB_HEAD_REF".into(),
                pull["head"]["ref"].as_str().unwrap().into(),
            ));
            env.push((
                "GITHUB_BASE_REF".into(),
                pull["base"]["ref"].as_str().unwrap().into(),
            ));
        }
        for name in ["DOCKER_HOST", "TMPDIR"] {
            if let Ok(value) = std::env::var(name) {
                env.push((name.into(), value));
            }
        }
        env.extend(self.machine_env.iter().cloned());
        let mut defined: Vec<(String, String)> = Vec::new();
        for (name, value) in workflow.env.iter().chain(&job.env) {
            let value = expr::interpolate(value, &context);
            defined.push((name.clone(), value));
        }
        context
            .contexts
            .insert("env".to_owned(), pairs_json(&defined));
        context.contexts.insert("steps".to_owned(), json!({}));
        context
            .contexts
            .insert("job".to_owned(), json!({ "status": "success" }));
        let view_scopes = delivery.fallback_scopes.clone();
        let timeout = Duration::from_secs(job.timeout_minutes.unwrap_or(360) * 60);
        let job_started = Instant::now();
        let mut post = Vec::new();
        let mut steps = Vec::new();
        let mut summary = String::new();
        let mut job_log = String::new();
        for (index, step) in job.steps.iter().enumerate() {
            let started = Instant::now();
            let run = step.condition.as_deref().unwrap_or("success()");
            if !expr::condition(run, &context) {
                eprintln!("workflow:   {}: skipped", step.name);
                steps.push(StepRun {
                    name: step.name.clone(),
                    id: step.id.clone(),
                    outcome: "skipped".into(),
                    conclusion: "skipped".into(),
                    exit_code: None,
                    log: String::new(),
                    seconds: 0.0,
                });
                if let Some(id) = &step.id {
                    context.contexts["steps"][id] =
                        json!({ "outcome": "skipped", "conclusion": "skipped", "outputs": {} });
                }
                continue;
            }
            let mut step_env = defined.clone();
            for (name, value) in &step.env {
                let value = expr::interpolate(value, &context);
                step_env.retain(|(n, _)| n != name);
                step_env.push((name.clone(), value));
            }
            let continue_on_error = step
                .continue_on_error
                .as_deref()
                .is_some_and(|value| expr::interpolate(value, &context) == "true");
            let (result, log, exit_code) = match &step.kind {
                StepKind::Uses { action, with, .. } => {
                    let with: Vec<(String, String)> = with
                        .iter()
                        .map(|(name, value)| (name.clone(), expr::interpolate(value, &context)))
                        .collect();
                    let view = actions::JobView {
                        workspace: &workspace,
                        home: &home,
                        origin: &self.origin,
                        git_ref: &delivery.git_ref,
                        sha: &delivery.sha,
                        fallback_scopes: view_scopes.clone(),
                        run_id,
                    };
                    let mut log = String::new();
                    let result =
                        actions::run(action, &with, &view, &mut self.stores, &mut post, &mut log);
                    if let Err(error) = &result {
                        log.push_str(&format!("Error: {error}\n"));
                    }
                    (result.map_err(|_| ()), log, None)
                }
                StepKind::Run { script } => {
                    let script = expr::interpolate(script, &context);
                    let files = StepFiles::new(&temp, index);
                    let remaining = timeout.saturating_sub(job_started.elapsed());
                    let mut full_env = env.clone();
                    full_env.extend(step_env.iter().cloned());
                    full_env.push(("GITHUB_OUTPUT".into(), files.output.display().to_string()));
                    full_env.push(("GITHUB_ENV".into(), files.env.display().to_string()));
                    full_env.push(("GITHUB_PATH".into(), files.path.display().to_string()));
                    full_env.push((
                        "GITHUB_STEP_SUMMARY".into(),
                        files.summary.display().to_string(),
                    ));
                    let path_value = std::env::join_paths(&path_entries).unwrap();
                    full_env.push(("PATH".into(), path_value.to_string_lossy().into_owned()));
                    let (code, log) = run_script(&script, &files, &workspace, &full_env, remaining);
                    let outputs = read_key_values(&files.output);
                    for (name, value) in read_key_values(&files.env) {
                        defined.retain(|(n, _)| *n != name);
                        defined.push((name, value));
                    }
                    context
                        .contexts
                        .insert("env".to_owned(), pairs_json(&defined));
                    if let Ok(added) = std::fs::read_to_string(&files.path) {
                        for line in added.lines().rev().filter(|l| !l.trim().is_empty()) {
                            path_entries.insert(0, PathBuf::from(line.trim()));
                        }
                    }
                    summary.push_str(&std::fs::read_to_string(&files.summary).unwrap_or_default());
                    let result = if code == Some(0) {
                        Ok(outputs)
                    } else {
                        Err(())
                    };
                    (result, log, code)
                }
            };
            let outcome = if result.is_ok() { "success" } else { "failure" };
            let conclusion = if result.is_err() && continue_on_error {
                "success"
            } else {
                outcome
            };
            if conclusion == "failure" {
                context.status = expr::Status::FAILED;
                context.contexts["job"]["status"] = json!("failure");
            }
            let outputs = match &result {
                Ok(outputs) => pairs_json(outputs),
                Err(()) => json!({}),
            };
            if let Some(id) = &step.id {
                context.contexts["steps"][id] =
                    json!({ "outcome": outcome, "conclusion": conclusion, "outputs": outputs });
            }
            let took = started.elapsed();
            let seconds = took.as_secs_f64();
            crate::append_timing(
                &format!("workflow:   {}", step.name),
                std::time::Duration::ZERO,
                took,
            );
            eprintln!(
                "workflow:   {}: {outcome}{} in {seconds:.1} s",
                step.name,
                exit_code
                    .map(|c| format!(" (exit {c})"))
                    .unwrap_or_default()
            );
            job_log.push_str(&log);
            steps.push(StepRun {
                name: step.name.clone(),
                id: step.id.clone(),
                outcome: outcome.into(),
                conclusion: conclusion.into(),
                exit_code,
                log,
                seconds,
            });
        }
        let succeeded = context.status.success;
        let outputs = job
            .outputs
            .iter()
            .map(|(name, value)| (name.clone(), expr::interpolate(value, &context)))
            .collect();
        let mut post_log = String::new();
        actions::run_post(post, succeeded, &mut self.stores, &mut post_log);
        if !post_log.is_empty() {
            eprint!(
                "workflow:   post: {}",
                post_log.replace('\n', "\n               ")
            );
            eprintln!();
        }
        // The job's home is gone; the workspace stays for the test to inspect until the next
        // job clears it (a saved cache took its paths away already).
        let _ = std::fs::remove_dir_all(&home);
        JobRun {
            id: job.id.clone(),
            conclusion: if succeeded { "success" } else { "failure" }.into(),
            steps,
            summary,
            outputs,
        }
    }
}

/// What one delivery of an event is, for the jobs it starts.
struct Delivery {
    name: String,
    action: Option<String>,
    payload: Value,
    git_ref: String,
    sha: String,
    actor: String,
    access: Access,
    fallback_scopes: Vec<String>,
}

/// The workflow's jobs in an order that runs each after the jobs it needs (file order
/// otherwise, as GitHub starts independent jobs together).
fn in_dependency_order(workflow: &Workflow) -> Vec<&model::Job> {
    let mut ordered: Vec<&model::Job> = Vec::new();
    while ordered.len() < workflow.jobs.len() {
        let ready = workflow.jobs.iter().find(|job| {
            !ordered.iter().any(|done| done.id == job.id)
                && job
                    .needs
                    .iter()
                    .all(|need| ordered.iter().any(|done| &done.id == need))
        });
        let Some(ready) = ready else {
            let waiting: Vec<String> = workflow
                .jobs
                .iter()
                .filter(|job| !ordered.iter().any(|done| done.id == job.id))
                .map(|job| format!("{} needs {:?}", job.id, job.needs))
                .collect();
            panic!(
                "{}: jobs need unknown jobs or each other: {}",
                workflow.file.display(),
                waiting.join("; ")
            )
        };
        ordered.push(ready);
    }
    ordered
}

/// The token a job gets: the delivery's (read-only for a fork), narrowed to read-only unless
/// the job's `permissions:` (else the workflow's; none at all is the repository's default,
/// write) let it write pull requests or issues, the only writes the stand-in serves.
fn job_access(workflow: &Workflow, job: &model::Job, delivered: Access) -> Access {
    let writes = job
        .permissions
        .as_ref()
        .or(workflow.permissions.as_ref())
        .is_none_or(|permissions| {
            permissions.writes("pull-requests") || permissions.writes("issues")
        });
    if delivered == Access::Write && writes {
        Access::Write
    } else {
        Access::ReadOnly
    }
}

/// The legs of a job's matrix, each its values by key (one leg without a matrix): the product
/// of the dimensions, in order, the first dimension slowest.
fn matrix_legs(
    job: &model::Job,
    context: &expr::Context,
) -> Vec<Option<serde_json::Map<String, Value>>> {
    let Some(strategy) = &job.strategy else {
        return vec![None];
    };
    let mut legs = vec![serde_json::Map::new()];
    for (key, values) in &strategy.matrix {
        let values = match values {
            model::MatrixValues::Listed(values) => values.clone(),
            model::MatrixValues::Expression(expression) => {
                match expr::value_of(expression, context) {
                    Value::Array(values) => values,
                    other => panic!(
                        "job {}: matrix.{key} = {expression} is {other}, not an array",
                        job.id
                    ),
                }
            }
        };
        assert!(
            !values.is_empty(),
            "job {}: matrix.{key} has no values (GitHub fails the run)",
            job.id
        );
        legs = legs
            .into_iter()
            .flat_map(|leg| {
                values.iter().map(move |value| {
                    let mut leg = leg.clone();
                    leg.insert(key.clone(), value.clone());
                    leg
                })
            })
            .collect();
    }
    legs.into_iter().map(Some).collect()
}

/// Whether a workflow's `on:` matches a delivery.
fn triggered(workflow: &Workflow, delivery: &Delivery) -> bool {
    let at = workflow.file.display().to_string();
    workflow.triggers.iter().any(|(event, filters)| {
        if *event != delivery.name {
            return false;
        }
        if let Some(map) = filters.as_hash() {
            for key in map.keys() {
                let key = model::text_of(key, &at);
                let known: &[&str] = match event.as_str() {
                    "push" => &["branches"],
                    "pull_request" => &["types", "branches"],
                    "workflow_run" => &["workflows", "types"],
                    _ => &[],
                };
                assert!(
                    known.contains(&key.as_str()),
                    "{at}: the filter `{key}` of `{event}` is not emulated"
                );
            }
        }
        let list = |key: &str| model::strings(&filters[key], &at);
        match event.as_str() {
            "push" => list("branches")
                .is_none_or(|branches| branches.contains(&ref_name(&delivery.git_ref))),
            "pull_request" => {
                let types = list("types").unwrap_or_else(|| {
                    vec!["opened".into(), "synchronize".into(), "reopened".into()]
                });
                let base = delivery.payload["pull_request"]["base"]["ref"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                types.contains(delivery.action.as_ref().unwrap())
                    && list("branches").is_none_or(|branches| branches.contains(&base))
            }
            "workflow_run" => {
                list("types").is_none_or(|types| types.contains(delivery.action.as_ref().unwrap()))
            }
            "schedule" | "workflow_dispatch" => true,
            other => panic!("{at}: the event `{other}` is not emulated"),
        }
    })
}

/// Whether a `workflow_run` workflow listens for runs of `name`.
fn triggered_by_run(workflow: &Workflow, name: &str) -> bool {
    let at = workflow.file.display().to_string();
    workflow.triggers.iter().any(|(event, filters)| {
        event == "workflow_run"
            && model::strings(&filters["workflows"], &at)
                .is_some_and(|names| names.iter().any(|n| n == name))
    })
}

fn ref_name(git_ref: &str) -> String {
    git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .or_else(|| {
            git_ref
                .strip_prefix("refs/pull/")
                .map(|rest| rest.trim_end_matches("/merge"))
        })
        .unwrap_or(git_ref)
        .to_owned()
}

fn repository_json() -> Value {
    json!({
        "id": github::REPOSITORY_ID,
        "full_name": github::REPOSITORY,
        "name": github::NAME,
        "owner": user_json(github::OWNER),
        "default_branch": DEFAULT_BRANCH,
        "fork": false,
    })
}

fn user_json(login: &str) -> Value {
    json!({
        "login": login,
        "type": if login.ends_with("[bot]") { "Bot" } else { "User" },
    })
}

fn runner_json() -> Value {
    json!({ "os": "Linux", "arch": "X64", "name": "emulated", "environment": "self-hosted" })
}

fn pairs_json(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The files a run step gets.
struct StepFiles {
    script: PathBuf,
    log: PathBuf,
    output: PathBuf,
    env: PathBuf,
    path: PathBuf,
    summary: PathBuf,
}

impl StepFiles {
    fn new(temp: &Path, index: usize) -> Self {
        let file = |what: &str| temp.join(format!("step-{index}-{what}"));
        let files = Self {
            script: file("script.sh"),
            log: file("log"),
            output: file("output"),
            env: file("env"),
            path: file("path"),
            summary: file("summary"),
        };
        for path in [&files.output, &files.env, &files.path, &files.summary] {
            std::fs::write(path, "").unwrap();
        }
        files
    }
}

/// Runs `script` as GitHub runs a bash step: `bash --noprofile --norc -eo pipefail {0}`, in
/// the workspace, with exactly `env`, its own process group (killed on timeout); returns the
/// exit code and what it printed.
fn run_script(
    script: &str,
    files: &StepFiles,
    workspace: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    std::fs::write(&files.script, script).unwrap();
    let log = std::fs::File::create(&files.log).unwrap();
    let mut child = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&files.script)
        .current_dir(workspace)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("bash");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut text = std::fs::read_to_string(&files.log).unwrap_or_default();
    if status.is_none() {
        text.push_str("\nError: the job's timeout-minutes ran out; the step was killed\n");
    }
    (status.and_then(|s| s.code()), text)
}

/// `name=value` and `name<<DELIMITER ... DELIMITER` lines (`GITHUB_OUTPUT`, `GITHUB_ENV`).
fn read_key_values(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut pairs = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for line in lines.by_ref() {
                if line == delimiter {
                    break;
                }
                value.push(line);
            }
            pairs.push((name.to_owned(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            pairs.push((name.to_owned(), value.to_owned()));
        } else {
            panic!("{}: cannot read the line {line:?}", path.display());
        }
    }
    pairs
}

/// Runs git in `dir`, panicking on failure; returns stdout.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
