//! GitHub Actions expressions (`${{ ... }}` and `if:` conditions), as far as this project's
//! workflows use them: literals, context paths (`github.event.pull_request.number`,
//! `steps.download.outcome`), the object filter (`labels.*.name`), `==`, `!=`, `!`, `&&`, `||`,
//! parentheses, and the functions `contains`, `fromJSON`, `hashFiles`, `always`, `success`,
//! `failure`, `cancelled`. Values are JSON values; comparisons follow GitHub's rules (strings compared
//! ignoring case, other types coerced to numbers). Anything else panics naming the
//! expression: a workflow that uses more must teach this module first, never be run half-
//! understood.

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// What an expression can read.
pub struct Context {
    /// `github`, `runner`, `steps`, `env`, `job` ... by name.
    pub contexts: serde_json::Map<String, Value>,
    /// What `success()` and `failure()` say: of the job's steps so far in a step's `if:`, of
    /// the jobs it needs in a job's `if:`.
    pub status: Status,
    /// The workspace `hashFiles` reads.
    pub workspace: PathBuf,
}

/// The status functions' answers. In a step: nothing failed so far, or a step failed. In a
/// job: every needed job succeeded (else `success()` is false, and a job without a status
/// function in its `if:` is skipped), and whether one of them failed (a skipped or cancelled
/// need is not a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub success: bool,
    pub failure: bool,
}

impl Status {
    pub const SUCCEEDED: Self = Self {
        success: true,
        failure: false,
    };
    pub const FAILED: Self = Self {
        success: false,
        failure: true,
    };
}

/// The value of `template` when it is one `${{ expression }}` and nothing else (an array for a
/// matrix, say); else its text, as [`interpolate`] gives it.
pub fn value_of(template: &str, context: &Context) -> Value {
    let trimmed = template.trim();
    match trimmed
        .strip_prefix("${{")
        .and_then(|rest| rest.strip_suffix("}}"))
    {
        Some(inner) if !inner.contains("${{") && !inner.contains("}}") => {
            let inner = inner.trim();
            evaluate(&parse(inner), context, inner)
        }
        _ => Value::String(interpolate(template, context)),
    }
}

/// Evaluates a condition (`if:`): with or without `${{ }}`, and with GitHub's implicit
/// `success() &&` unless it calls a status function itself.
pub fn condition(source: &str, context: &Context) -> bool {
    let trimmed = source.trim();
    let inner = match trimmed
        .strip_prefix("${{")
        .and_then(|rest| rest.strip_suffix("}}"))
    {
        Some(inner) if !inner.contains("${{") => inner.trim(),
        _ if trimmed.contains("${{") => {
            panic!(
                "condition {source:?}: `${{{{ }}}}` only around the whole condition is understood"
            )
        }
        _ => trimmed,
    };
    let expression = parse(inner);
    let status_checked = calls_status_function(&expression);
    let value = evaluate(&expression, context, inner);
    if status_checked {
        truthy(&value)
    } else {
        context.status.success && truthy(&value)
    }
}

/// Replaces every `${{ expression }}` in `template` with its value as text.
pub fn interpolate(template: &str, context: &Context) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("unterminated `${{{{` in {template:?}"));
        let source = after[..end].trim();
        let value = evaluate(&parse(source), context, source);
        out.push_str(&to_text(&value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A value as GitHub writes it into a string.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).expect("JSON"),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    String(String),
    Ident(String),
    Dot,
    Star,
    Comma,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Not,
    And,
    Or,
    Eq,
    Ne,
}

fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let unknown = |what: &str| -> ! { panic!("expression {source:?}: {what} is not understood") };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                        None => unknown("an unterminated string"),
                    }
                }
                tokens.push(Token::String(text));
            }
            '.' if tokens.last().is_some_and(|t| {
                matches!(
                    t,
                    Token::Ident(_) | Token::Close | Token::CloseBracket | Token::Star
                )
            }) =>
            {
                tokens.push(Token::Dot);
                i += 1;
            }
            '*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '[' => {
                tokens.push(Token::OpenBracket);
                i += 1;
            }
            ']' => {
                tokens.push(Token::CloseBracket);
                i += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::Ne);
                i += 2;
            }
            '!' => {
                tokens.push(Token::Not);
                i += 1;
            }
            '=' if next == Some('=') => {
                tokens.push(Token::Eq);
                i += 2;
            }
            '&' if next == Some('&') => {
                tokens.push(Token::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                tokens.push(Token::Or);
                i += 2;
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let number = text
                    .parse::<f64>()
                    .unwrap_or_else(|_| unknown(&format!("the number {text:?}")));
                tokens.push(Token::Number(number));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => unknown(&format!("the character {other:?}")),
        }
    }
    tokens
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    Literal(Value),
    /// A context (`github`) followed by property accesses.
    Path(String, Vec<Access>),
    Call(String, Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
    Ne(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone)]
pub enum Access {
    Property(String),
    Index(Box<Expr>),
    /// `.*`: the object filter.
    All,
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    source: &'a str,
}

/// Parses an expression (the text between `${{` and `}}`).
pub fn parse(source: &str) -> Expr {
    let mut parser = Parser {
        tokens: tokenize(source),
        at: 0,
        source,
    };
    let expression = parser.or();
    if parser.at != parser.tokens.len() {
        parser.fail("text after the expression");
    }
    expression
}

impl Parser<'_> {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "expression {:?}: {what} (at token {} of {:?})",
            self.source, self.at, self.tokens
        )
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, token: Token) {
        if self.next() != Some(token.clone()) {
            self.fail(&format!("expected {token:?}"));
        }
    }

    fn or(&mut self) -> Expr {
        let mut left = self.and();
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()));
        }
        left
    }

    fn and(&mut self) -> Expr {
        let mut left = self.equality();
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.equality()));
        }
        left
    }

    fn equality(&mut self) -> Expr {
        let mut left = self.unary();
        loop {
            match self.peek() {
                Some(Token::Eq) => {
                    self.at += 1;
                    left = Expr::Eq(Box::new(left), Box::new(self.unary()));
                }
                Some(Token::Ne) => {
                    self.at += 1;
                    left = Expr::Ne(Box::new(left), Box::new(self.unary()));
                }
                _ => return left,
            }
        }
    }

    fn unary(&mut self) -> Expr {
        if self.peek() == Some(&Token::Not) {
            self.at += 1;
            return Expr::Not(Box::new(self.unary()));
        }
        self.primary()
    }

    fn primary(&mut self) -> Expr {
        match self.next() {
            Some(Token::Number(n)) => Expr::Literal(serde_json::json!(n)),
            Some(Token::String(s)) => Expr::Literal(Value::String(s)),
            Some(Token::Open) => {
                let inner = self.or();
                self.expect(Token::Close);
                inner
            }
            Some(Token::Ident(name)) => match name.as_str() {
                "true" => Expr::Literal(Value::Bool(true)),
                "false" => Expr::Literal(Value::Bool(false)),
                "null" => Expr::Literal(Value::Null),
                _ if self.peek() == Some(&Token::Open) => {
                    self.at += 1;
                    let mut arguments = Vec::new();
                    if self.peek() != Some(&Token::Close) {
                        loop {
                            arguments.push(self.or());
                            if self.peek() == Some(&Token::Comma) {
                                self.at += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect(Token::Close);
                    Expr::Call(name, arguments)
                }
                _ => {
                    let mut accesses = Vec::new();
                    loop {
                        match self.peek() {
                            Some(Token::Dot) => {
                                self.at += 1;
                                match self.next() {
                                    Some(Token::Ident(property)) => {
                                        accesses.push(Access::Property(property))
                                    }
                                    Some(Token::Star) => accesses.push(Access::All),
                                    _ => self.fail("a property name after `.`"),
                                }
                            }
                            Some(Token::OpenBracket) => {
                                self.at += 1;
                                if self.peek() == Some(&Token::Star) {
                                    self.at += 1;
                                    accesses.push(Access::All);
                                } else {
                                    accesses.push(Access::Index(Box::new(self.or())));
                                }
                                self.expect(Token::CloseBracket);
                            }
                            _ => break,
                        }
                    }
                    Expr::Path(name, accesses)
                }
            },
            _ => self.fail("a value"),
        }
    }
}

fn calls_status_function(expression: &Expr) -> bool {
    match expression {
        Expr::Call(name, arguments) => {
            matches!(
                name.as_str(),
                "always" | "success" | "failure" | "cancelled"
            ) || arguments.iter().any(calls_status_function)
        }
        Expr::Not(inner) => calls_status_function(inner),
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Eq(a, b) | Expr::Ne(a, b) => {
            calls_status_function(a) || calls_status_function(b)
        }
        Expr::Literal(_) | Expr::Path(..) => false,
    }
}

/// GitHub's truthiness: false, 0, -0, "", null are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0 && !n.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => s.trim().parse().unwrap_or(f64::NAN),
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

/// GitHub's loose equality.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            std::ptr::eq(a, b)
        }
        _ => number(a) == number(b),
    }
}

fn evaluate(expression: &Expr, context: &Context, source: &str) -> Value {
    match expression {
        Expr::Literal(value) => value.clone(),
        Expr::Not(inner) => Value::Bool(!truthy(&evaluate(inner, context, source))),
        Expr::And(a, b) => {
            let left = evaluate(a, context, source);
            if truthy(&left) {
                evaluate(b, context, source)
            } else {
                left
            }
        }
        Expr::Or(a, b) => {
            let left = evaluate(a, context, source);
            if truthy(&left) {
                left
            } else {
                evaluate(b, context, source)
            }
        }
        Expr::Eq(a, b) => Value::Bool(equal(
            &evaluate(a, context, source),
            &evaluate(b, context, source),
        )),
        Expr::Ne(a, b) => Value::Bool(!equal(
            &evaluate(a, context, source),
            &evaluate(b, context, source),
        )),
        Expr::Path(name, accesses) => {
            let Some(root) = context.contexts.get(name) else {
                panic!("expression {source:?}: the context `{name}` is not known here")
            };
            let mut value = root.clone();
            let mut filtered = false;
            for access in accesses {
                value = match access {
                    Access::All => {
                        let items: Vec<Value> = match value {
                            Value::Array(items) if filtered => items
                                .into_iter()
                                .flat_map(|item| match item {
                                    Value::Array(inner) => inner,
                                    Value::Object(map) => map.into_values().collect(),
                                    _ => Vec::new(),
                                })
                                .collect(),
                            Value::Array(items) => items,
                            Value::Object(map) => map.into_values().collect(),
                            _ => Vec::new(),
                        };
                        filtered = true;
                        Value::Array(items)
                    }
                    Access::Property(property) => {
                        if filtered {
                            match value {
                                Value::Array(items) => Value::Array(
                                    items
                                        .iter()
                                        .filter_map(|item| item.get(property).cloned())
                                        .collect(),
                                ),
                                _ => Value::Array(Vec::new()),
                            }
                        } else {
                            property_of(&value, property)
                        }
                    }
                    Access::Index(index) => {
                        if filtered {
                            panic!("expression {source:?}: an index after `.*` is not understood")
                        }
                        match evaluate(index, context, source) {
                            Value::String(property) => property_of(&value, &property),
                            Value::Number(n) => n
                                .as_u64()
                                .and_then(|i| value.get(i as usize).cloned())
                                .unwrap_or(Value::Null),
                            other => {
                                panic!("expression {source:?}: the index {other} is not understood")
                            }
                        }
                    }
                };
            }
            value
        }
        Expr::Call(name, arguments) => {
            let values: Vec<Value> = arguments
                .iter()
                .map(|argument| evaluate(argument, context, source))
                .collect();
            match (name.to_lowercase().as_str(), values.as_slice()) {
                ("always", []) => Value::Bool(true),
                ("success", []) => Value::Bool(context.status.success),
                ("failure", []) => Value::Bool(context.status.failure),
                ("fromjson", [Value::String(text)]) => serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("expression {source:?}: fromJSON of {text:?}: {e}")),
                ("cancelled", []) => Value::Bool(false),
                ("contains", [search, item]) => Value::Bool(match search {
                    Value::Array(items) => items.iter().any(|candidate| equal(candidate, item)),
                    other => to_text(other)
                        .to_lowercase()
                        .contains(&to_text(item).to_lowercase()),
                }),
                ("hashfiles", patterns) if !patterns.is_empty() => {
                    Value::String(hash_files(&context.workspace, patterns, source))
                }
                _ => panic!(
                    "expression {source:?}: the function {name}() with {} argument(s) is not understood",
                    values.len()
                ),
            }
        }
    }
}

/// A property of an object, case-insensitively as GitHub does; null when absent.
fn property_of(value: &Value, property: &str) -> Value {
    match value {
        Value::Object(map) => map
            .get(property)
            .or_else(|| {
                map.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(property))
                    .map(|(_, value)| value)
            })
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// `hashFiles(...)`: the SHA-256 of the SHA-256 digests of the matched files, in order, or
/// the empty string when none matched (actions/runner's `hashFiles`). Only literal paths
/// relative to the workspace are understood.
fn hash_files(workspace: &std::path::Path, patterns: &[Value], source: &str) -> String {
    let mut outer = Sha256::new();
    let mut matched = 0;
    for pattern in patterns {
        let Value::String(pattern) = pattern else {
            panic!("expression {source:?}: hashFiles takes strings")
        };
        if pattern.contains(['*', '?', '[', '!', '{']) {
            panic!("expression {source:?}: glob patterns in hashFiles are not understood")
        }
        let path = workspace.join(pattern);
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read a hashed file");
            outer.update(Sha256::digest(&bytes));
            matched += 1;
        }
    }
    if matched == 0 {
        return String::new();
    }
    outer
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        let mut contexts = serde_json::Map::new();
        contexts.insert(
            "github".to_owned(),
            serde_json::json!({
                "event_name": "pull_request",
                "event": { "pull_request": { "number": 7, "labels": [{ "name": "perf-accept" }, { "name": "x" }] } },
            }),
        );
        contexts.insert(
            "steps".to_owned(),
            serde_json::json!({ "download": { "outcome": "failure" } }),
        );
        Context {
            contexts,
            status: Status::SUCCEEDED,
            workspace: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn the_expressions_of_the_workflows_evaluate_as_on_github() {
        let c = context();
        assert_eq!(
            interpolate(
                "${{ contains(github.event.pull_request.labels.*.name, 'perf-accept') }}",
                &c
            ),
            "true"
        );
        assert_eq!(
            interpolate(
                "${{ contains(github.event.pull_request.labels.*.name, 'perf-paired') }}",
                &c
            ),
            "false"
        );
        assert_eq!(
            interpolate("perf-${{ github.event.pull_request.number }}", &c),
            "perf-7"
        );
        assert!(condition("github.event_name != 'schedule'", &c));
        assert!(condition("github.event_name == 'PULL_REQUEST'", &c));
        assert!(!condition("steps.download.outcome == 'success'", &c));
        assert!(condition("${{ always() }}", &c));
        let failed = Context {
            status: Status::FAILED,
            ..context()
        };
        assert!(!condition("true", &failed));
        assert!(condition("always()", &failed));
        assert!(condition("failure() && !(1 == 2)", &failed));
        // A job whose need was skipped: neither success nor failure.
        let need_skipped = Context {
            status: Status {
                success: false,
                failure: false,
            },
            ..context()
        };
        assert!(!condition("true", &need_skipped));
        assert!(!condition("failure()", &need_skipped));
        assert!(condition("always()", &need_skipped));
    }

    #[test]
    fn from_json_gives_the_value_a_matrix_takes() {
        let mut c = context();
        c.contexts.insert(
            "needs".to_owned(),
            serde_json::json!({ "plan": { "outputs": { "shards": "[1,2]" } } }),
        );
        assert_eq!(
            value_of("${{ fromJSON(needs.plan.outputs.shards) }}", &c),
            serde_json::json!([1, 2])
        );
        assert_eq!(
            value_of("shard ${{ needs.plan.outputs.shards }}", &c),
            serde_json::json!("shard [1,2]")
        );
        assert!(condition("needs.plan.outputs.shards != '[1]'", &c));
    }

    #[test]
    fn an_unknown_function_panics_naming_it() {
        let context = context();
        let panicked = std::panic::catch_unwind(|| interpolate("${{ toJSON('1') }}", &context))
            .expect_err("an unknown function must not be evaluated");
        let message = panicked
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panicked.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        assert!(message.contains("toJSON"), "{message}");
    }
}
