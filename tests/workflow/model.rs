//! The workflow files as data: `.github/workflows/*.yml` of a checkout read with a YAML 1.2
//! parser (`yaml-rust2`; in YAML 1.1 the key `on` would be the boolean true) into workflows,
//! jobs and steps. Keys this runner does not carry out (`services`, `defaults`, a matrix's
//! `include`/`exclude`, a step's `shell` other than bash ...) panic naming the file: the
//! lifecycle test must never pass by skipping what a workflow asks for.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// One workflow file.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub file: PathBuf,
    pub name: String,
    /// `on:` as (event name, its filters or `Yaml::Null`).
    pub triggers: Vec<(String, Yaml)>,
    pub env: Vec<(String, String)>,
    /// `concurrency.group` of the workflow, unevaluated.
    pub concurrency: Option<String>,
    /// `permissions:` of the workflow (every job's unless it has its own).
    pub permissions: Option<Permissions>,
    pub jobs: Vec<Job>,
}

/// `permissions:` as written: `read-all` / `write-all`, or scopes and their access (`{}` is
/// no scope at all).
#[derive(Debug, Clone, PartialEq)]
pub enum Permissions {
    ReadAll,
    WriteAll,
    Scopes(Vec<(String, String)>),
}

impl Permissions {
    /// Whether the token may write `scope` (`pull-requests`, `contents` ...).
    pub fn writes(&self, scope: &str) -> bool {
        match self {
            Self::ReadAll => false,
            Self::WriteAll => true,
            Self::Scopes(scopes) => scopes
                .iter()
                .any(|(name, access)| name == scope && access == "write"),
        }
    }
}

/// `strategy:` of a job: its matrix's dimensions (values, or one expression each that gives
/// an array, such as `${{ fromJSON(needs.plan.outputs.shards) }}`), and `fail-fast`.
#[derive(Debug, Clone)]
pub struct Strategy {
    pub matrix: Vec<(String, MatrixValues)>,
    /// Default true: the first failed leg cancels the legs not finished.
    pub fail_fast: bool,
}

#[derive(Debug, Clone)]
pub enum MatrixValues {
    Listed(Vec<serde_json::Value>),
    Expression(String),
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    /// `needs:`: the jobs that must finish first.
    pub needs: Vec<String>,
    pub condition: Option<String>,
    pub strategy: Option<Strategy>,
    /// `outputs:` (name, unevaluated expression), read after the job's steps.
    pub outputs: Vec<(String, String)>,
    pub permissions: Option<Permissions>,
    pub env: Vec<(String, String)>,
    /// `concurrency.group` of the job, unevaluated.
    pub concurrency: Option<String>,
    pub timeout_minutes: Option<u64>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: Option<String>,
    /// `name:`, else what GitHub shows (`Run <first line>` or the action).
    pub name: String,
    pub condition: Option<String>,
    pub env: Vec<(String, String)>,
    /// `continue-on-error:` (a boolean or an expression), unevaluated.
    pub continue_on_error: Option<String>,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Run {
        script: String,
    },
    Uses {
        /// `owner/name` of the action.
        action: String,
        /// What follows `@` (a commit or tag).
        version: String,
        with: Vec<(String, String)>,
    },
}

/// Every workflow under `<checkout>/.github/workflows/`, in file-name order.
pub fn load_all(checkout: &Path) -> Vec<Workflow> {
    let dir = checkout.join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    files.iter().map(|file| load(file)).collect()
}

/// One workflow file.
pub fn load(file: &Path) -> Workflow {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let documents = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.display()));
    let [document] = documents.as_slice() else {
        panic!("{}: expected one YAML document", file.display())
    };
    let at = |what: &str| format!("{}: {what}", file.display());
    let root = hash(document, &at("the workflow"));
    check_keys(
        root,
        &["name", "on", "permissions", "concurrency", "jobs", "env"],
        &at("the workflow"),
    );
    let triggers = match &document["on"] {
        Yaml::String(event) => vec![(event.clone(), Yaml::Null)],
        Yaml::Array(events) => events
            .iter()
            .map(|event| (text_of(event, &at("on")), Yaml::Null))
            .collect(),
        Yaml::Hash(events) => events
            .iter()
            .map(|(event, filters)| (text_of(event, &at("on")), filters.clone()))
            .collect(),
        other => panic!("{}: `on` is {other:?}", file.display()),
    };
    let jobs = hash(&document["jobs"], &at("jobs"))
        .iter()
        .map(|(id, job)| {
            let id = text_of(id, &at("a job id"));
            load_job(&id, job, &at(&format!("job {id}")))
        })
        .collect();
    Workflow {
        file: file.to_path_buf(),
        name: optional_text(&document["name"], &at("name"))
            .unwrap_or_else(|| file.to_string_lossy().into_owned()),
        triggers,
        env: pairs(&document["env"], &at("env")),
        concurrency: concurrency_group(&document["concurrency"], &at("concurrency")),
        permissions: permissions(&document["permissions"], &at("permissions")),
        jobs,
    }
}

fn load_job(id: &str, job: &Yaml, at: &str) -> Job {
    check_keys(
        hash(job, at),
        &[
            "if",
            "runs-on",
            "timeout-minutes",
            "concurrency",
            "permissions",
            "steps",
            "env",
            "name",
            "needs",
            "outputs",
            "strategy",
        ],
        at,
    );
    let steps = job["steps"]
        .as_vec()
        .unwrap_or_else(|| panic!("{at}: no steps"))
        .iter()
        .enumerate()
        .map(|(index, step)| load_step(step, &format!("{at}, step {}", index + 1)))
        .collect();
    Job {
        id: id.to_owned(),
        needs: strings(&job["needs"], &format!("{at}: needs")).unwrap_or_default(),
        condition: optional_text(&job["if"], &format!("{at}: if")),
        strategy: strategy(&job["strategy"], &format!("{at}: strategy")),
        outputs: pairs(&job["outputs"], &format!("{at}: outputs")),
        permissions: permissions(&job["permissions"], &format!("{at}: permissions")),
        env: pairs(&job["env"], &format!("{at}: env")),
        concurrency: concurrency_group(&job["concurrency"], &format!("{at}: concurrency")),
        timeout_minutes: job["timeout-minutes"]
            .as_i64()
            .map(|m| u64::try_from(m).expect("timeout-minutes >= 0")),
        steps,
    }
}

fn load_step(step: &Yaml, at: &str) -> Step {
    check_keys(
        hash(step, at),
        &[
            "id",
            "name",
            "if",
            "env",
            "continue-on-error",
            "uses",
            "with",
            "run",
            "shell",
            "timeout-minutes",
        ],
        at,
    );
    if let Some(shell) = optional_text(&step["shell"], at)
        && shell != "bash"
    {
        panic!("{at}: shell {shell:?} is not emulated (only bash)")
    }
    let kind = match (
        optional_text(&step["run"], at),
        optional_text(&step["uses"], at),
    ) {
        (Some(script), None) => StepKind::Run { script },
        (None, Some(uses)) => {
            let (action, version) = uses
                .split_once('@')
                .unwrap_or_else(|| panic!("{at}: `uses: {uses}` has no version"));
            StepKind::Uses {
                action: action.to_owned(),
                version: version.to_owned(),
                with: pairs(&step["with"], &format!("{at}: with")),
            }
        }
        _ => panic!("{at}: a step has either `run` or `uses`"),
    };
    if matches!(kind, StepKind::Run { .. }) && !step["with"].is_badvalue() {
        panic!("{at}: `with` on a run step")
    }
    let name = optional_text(&step["name"], at).unwrap_or_else(|| match &kind {
        StepKind::Run { script } => format!("Run {}", script.lines().next().unwrap_or("")),
        StepKind::Uses {
            action, version, ..
        } => format!("Run {action}@{version}"),
    });
    Step {
        id: optional_text(&step["id"], at),
        name,
        condition: optional_text(&step["if"], at),
        env: pairs(&step["env"], &format!("{at}: env")),
        continue_on_error: optional_text(&step["continue-on-error"], at),
        kind,
    }
}

fn hash<'a>(value: &'a Yaml, at: &str) -> &'a yaml_rust2::yaml::Hash {
    value
        .as_hash()
        .unwrap_or_else(|| panic!("{at}: expected a mapping, found {value:?}"))
}

fn check_keys(map: &yaml_rust2::yaml::Hash, known: &[&str], at: &str) {
    for key in map.keys() {
        let key = text_of(key, at);
        assert!(
            known.contains(&key.as_str()),
            "{at}: the key `{key}` is not emulated by the workflow runner"
        );
    }
}

/// A scalar as the text GitHub would see.
pub fn text_of(value: &Yaml, at: &str) -> String {
    optional_text(value, at).unwrap_or_else(|| panic!("{at}: expected a value"))
}

fn optional_text(value: &Yaml, at: &str) -> Option<String> {
    match value {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        other => panic!("{at}: expected a scalar, found {other:?}"),
    }
}

fn pairs(value: &Yaml, at: &str) -> Vec<(String, String)> {
    match value {
        Yaml::BadValue | Yaml::Null => Vec::new(),
        Yaml::Hash(map) => map
            .iter()
            .map(|(key, value)| (text_of(key, at), text_of(value, at)))
            .collect(),
        other => panic!("{at}: expected a mapping, found {other:?}"),
    }
}

fn permissions(value: &Yaml, at: &str) -> Option<Permissions> {
    match value {
        Yaml::BadValue => None,
        Yaml::String(all) if all == "read-all" => Some(Permissions::ReadAll),
        Yaml::String(all) if all == "write-all" => Some(Permissions::WriteAll),
        Yaml::Hash(_) => Some(Permissions::Scopes(pairs(value, at))),
        other => panic!("{at}: expected permissions, found {other:?}"),
    }
}

fn strategy(value: &Yaml, at: &str) -> Option<Strategy> {
    if value.is_badvalue() {
        return None;
    }
    check_keys(hash(value, at), &["matrix", "fail-fast"], at);
    let matrix = hash(&value["matrix"], &format!("{at}: matrix"))
        .iter()
        .map(|(key, values)| {
            let key = text_of(key, at);
            let at = format!("{at}: matrix.{key}");
            assert!(
                key != "include" && key != "exclude",
                "{at}: is not emulated by the workflow runner"
            );
            let values = match values {
                Yaml::Array(items) => MatrixValues::Listed(
                    items
                        .iter()
                        .map(|item| match item {
                            Yaml::Integer(i) => serde_json::json!(i),
                            Yaml::Boolean(b) => serde_json::json!(b),
                            other => serde_json::json!(text_of(other, &at)),
                        })
                        .collect(),
                ),
                Yaml::String(expression) => MatrixValues::Expression(expression.clone()),
                other => panic!("{at}: expected a list or an expression, found {other:?}"),
            };
            (key, values)
        })
        .collect();
    let fail_fast = match &value["fail-fast"] {
        Yaml::BadValue => true,
        Yaml::Boolean(b) => *b,
        other => panic!("{at}: fail-fast {other:?} is not emulated"),
    };
    Some(Strategy { matrix, fail_fast })
}

fn concurrency_group(value: &Yaml, at: &str) -> Option<String> {
    match value {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::String(group) => Some(group.clone()),
        Yaml::Hash(map) => {
            check_keys(map, &["group", "cancel-in-progress"], at);
            Some(text_of(&value["group"], at))
        }
        other => panic!("{at}: expected a group, found {other:?}"),
    }
}

/// The strings of a filter list (`branches: [main]`, `types: [...]`).
pub fn strings(value: &Yaml, at: &str) -> Option<Vec<String>> {
    match value {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::Array(items) => Some(items.iter().map(|item| text_of(item, at)).collect()),
        Yaml::String(one) => Some(vec![one.clone()]),
        other => panic!("{at}: expected a list, found {other:?}"),
    }
}
