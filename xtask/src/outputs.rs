//! The output directory of one run (`--out`, default `target/perf`): held by one run at a time,
//! and cleared of the previous run's reports before anything is measured.
//!
//! Two runs writing one output directory would overwrite each other's raw tool outputs, records
//! and reports; the second run is refused, naming the fix. A run that fails before it reports
//! must not leave the previous run's verdict where CI uploads this run's: `report.*` and the
//! fork-comment artifact move to `<out>/previous/` first (kept there, not deleted: the last good
//! report stays readable). Nothing here knows git, services or GitHub.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// The report files a run writes, and the fork-comment artifact directory.
pub const REPORT_FILES: [&str; 5] = [
    "report.md",
    "report.json",
    "report.html",
    "report.bmf.json",
    "comment",
];

/// Where the previous run's reports are kept.
pub const PREVIOUS_DIR: &str = "previous";

const LOCK_FILE: &str = ".perf-run.lock";

#[derive(Debug, thiserror::Error)]
pub enum OutputsError {
    #[error(
        "another `cargo xtask perf` run is using {dir} (it holds {lock}).\n  fix: wait for it to finish, or give this run an output directory of its own with --out <dir>"
    )]
    InUse { dir: PathBuf, lock: PathBuf },
    #[error(
        "cannot {action} {path}: {source}\n  fix: check that the output directory is writable, or choose another with --out <dir>"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The output directory, held exclusively until dropped.
#[derive(Debug)]
pub struct ClaimedOutputs {
    _lock: File,
}

/// Takes the output directory for this run, or fails at once if another run holds it.
pub fn claim(out_dir: &Path) -> Result<ClaimedOutputs, OutputsError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputsError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(out_dir).map_err(io("create", out_dir))?;
    let lock = out_dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(io("open", &lock))?;
    match file.try_lock() {
        Ok(()) => Ok(ClaimedOutputs { _lock: file }),
        Err(TryLockError::WouldBlock) => Err(OutputsError::InUse {
            dir: out_dir.to_path_buf(),
            lock,
        }),
        Err(TryLockError::Error(source)) => Err(OutputsError::Io {
            action: "lock",
            path: lock,
            source,
        }),
    }
}

/// Moves the previous run's reports (and comment artifact) to `<out>/previous/`, replacing
/// what an older run left there.
pub fn set_aside_previous_reports(
    _claimed: &ClaimedOutputs,
    out_dir: &Path,
) -> Result<(), OutputsError> {
    let previous = out_dir.join(PREVIOUS_DIR);
    for name in REPORT_FILES {
        let from = out_dir.join(name);
        if std::fs::symlink_metadata(&from).is_err() {
            continue;
        }
        std::fs::create_dir_all(&previous).map_err(|source| OutputsError::Io {
            action: "create",
            path: previous.clone(),
            source,
        })?;
        let to = previous.join(name);
        let removed = if to.is_dir() {
            std::fs::remove_dir_all(&to)
        } else {
            std::fs::remove_file(&to)
        };
        if let Err(source) = removed
            && source.kind() != std::io::ErrorKind::NotFound
        {
            return Err(OutputsError::Io {
                action: "remove",
                path: to,
                source,
            });
        }
        std::fs::rename(&from, &to).map_err(|source| OutputsError::Io {
            action: "move aside",
            path: from.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13, defect 5: two runs in one output directory overwrote each other's outputs.
    #[test]
    fn a_second_run_in_the_same_output_directory_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path()).unwrap();
        let error = claim(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("fix: wait for it to finish"),
            "{error}"
        );
        drop(first);
        claim(dir.path()).expect("free again once the first run ended");
    }

    /// Issue 13, defect 4: a run that failed before reporting left the previous run's report
    /// and comment where CI uploads them, and an old verdict was posted for a new head.
    #[test]
    fn the_previous_reports_are_set_aside_before_a_run_and_the_last_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::write(out.join("report.md"), "old verdict").unwrap();
        std::fs::create_dir_all(out.join("comment")).unwrap();
        std::fs::write(out.join("comment/comment.md"), "old comment").unwrap();
        std::fs::create_dir_all(out.join("runs")).unwrap();
        let claimed = claim(out).unwrap();
        set_aside_previous_reports(&claimed, out).unwrap();
        assert!(!out.join("report.md").exists());
        assert!(!out.join("comment").exists());
        assert!(out.join("runs").is_dir(), "records stay where they are");
        assert_eq!(
            std::fs::read_to_string(out.join("previous/report.md")).unwrap(),
            "old verdict"
        );
        // A second set-aside replaces the kept ones with the newer ones.
        std::fs::write(out.join("report.md"), "newer verdict").unwrap();
        set_aside_previous_reports(&claimed, out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("previous/report.md")).unwrap(),
            "newer verdict"
        );
        assert!(out.join("previous/comment/comment.md").is_file());
    }
}
