//! Where a record lives on the baseline branch, `<machine_class>/<sha>.json`, and the checks
//! that make both parts safe path components.

use super::StoreError;

/// Longest machine class accepted as a directory name.
const MAX_MACHINE_CLASS_LEN: usize = 100;

/// `<machine_class>/<sha>.json`, after checking both are safe to use as path components.
pub fn record_path(machine_class: &str, commit: &str) -> Result<String, StoreError> {
    check_machine_class(machine_class)?;
    if !is_full_sha(commit) {
        return Err(StoreError::InvalidCommit {
            commit: commit.to_owned(),
        });
    }
    Ok(format!("{machine_class}/{commit}.json"))
}

/// The machine class and commit of a record path, `None` for any other file.
pub(super) fn parse_record_path(path: &str) -> Option<(&str, &str)> {
    let (machine_class, name) = path.split_once('/')?;
    let commit = name.strip_suffix(".json")?;
    (check_machine_class(machine_class).is_ok() && is_full_sha(commit))
        .then_some((machine_class, commit))
}

/// A machine class names one directory: letters, digits, `.`, `_` and `-`, not starting with
/// `.` (no `..`, no hidden directory) or `-` (never read as an option).
fn check_machine_class(class: &str) -> Result<(), StoreError> {
    let reason = if class.is_empty() {
        Some("it is empty")
    } else if class.len() > MAX_MACHINE_CLASS_LEN {
        Some("it is longer than 100 characters")
    } else if class.starts_with('.') || class.starts_with('-') {
        Some("it starts with '.' or '-'")
    } else if !class
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("it has a character other than letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidMachineClass {
            class: class.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A full SHA-1 or SHA-256 object name in lowercase hex.
fn is_full_sha(commit: &str) -> bool {
    matches!(commit.len(), 40 | 64)
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
