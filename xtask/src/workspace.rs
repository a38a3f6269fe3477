//! Where things are: the workspace root, the cargo target directory and the output directory
//! of the harness. Paths only; nothing here reads or writes files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The workspace of the harness that runs: the package directory cargo gives it at run time
/// (`cargo xtask` is `cargo run --package xtask`, which sets `CARGO_PKG_NAME` and
/// `CARGO_MANIFEST_DIR`), else the one it was compiled in (the binary started directly).
///
/// Not the compiled-in one first: cargo's fingerprints do not depend on where a checkout is, so
/// with a target directory shared between checkouts (`CARGO_TARGET_DIR`, `build.target-dir`, a
/// restored CI cache) `cargo xtask` in one checkout runs the binary last built in another when
/// its own sources are not newer, and that binary, trusting its compiled-in path, measured the
/// other checkout (or failed when it was gone). The run-time variables are used only when they
/// name this package: a binary started by a process that itself runs under cargo (a test)
/// inherits that process's.
fn workspace_root(run_time_package: Option<&OsStr>, run_time_dir: Option<&OsStr>) -> PathBuf {
    let package_dir = match (run_time_package, run_time_dir) {
        (Some(name), Some(dir)) if name == env!("CARGO_PKG_NAME") => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    package_dir
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Paths of one harness run.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The workspace this xtask belongs to.
    pub root: PathBuf,
    /// Cargo's target directory (`CARGO_TARGET_DIR` or `<root>/target`).
    pub target_dir: PathBuf,
    /// Records and reports (`--out`, default `<target>/perf`).
    pub out_dir: PathBuf,
}

impl Layout {
    pub fn new(out: Option<&Path>) -> Self {
        let root = workspace_root(
            std::env::var_os("CARGO_PKG_NAME").as_deref(),
            std::env::var_os("CARGO_MANIFEST_DIR").as_deref(),
        );
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|dir| {
                if dir.is_absolute() {
                    dir
                } else {
                    root.join(dir)
                }
            })
            .unwrap_or_else(|| root.join("target"));
        let out_dir = match out {
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            Some(dir) => std::env::current_dir()
                .map(|cwd| cwd.join(dir))
                .unwrap_or_else(|_| dir.to_path_buf()),
            None => target_dir.join("perf"),
        };
        Self {
            root,
            target_dir,
            out_dir,
        }
    }

    /// Per-commit records: `<out>/runs/<sha>[-dirty].json`.
    pub fn runs_dir(&self) -> PathBuf {
        self.out_dir.join("runs")
    }

    /// Raw outputs of the benchmark tools for one measured revision (`head` or `base`).
    pub fn raw_dir(&self, label: &str) -> PathBuf {
        self.out_dir.join("raw").join(label)
    }

    /// Where a base revision is checked out to be built and measured by run `run_id`: a
    /// directory of the run's own, so that two runs measuring the same commit (with different
    /// `--out`) never remove each other's worktree.
    pub fn worktree_dir(&self, commit: &str, run_id: &str) -> PathBuf {
        self.target_dir
            .join("perf-worktrees")
            .join(format!("{commit}-{run_id}"))
    }

    /// Cargo's target directory for base revisions: apart from HEAD's, so that building a
    /// base never makes HEAD's next run rebuild (and never lets it run a base's binaries). Its
    /// first build starts from a copy of HEAD's dependencies (`build_guard::seed_from`).
    pub fn base_target_dir(&self) -> PathBuf {
        self.target_dir.join("perf-base")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled_in_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn under_cargo_run_the_checkout_cargo_names_is_the_workspace() {
        let root = workspace_root(
            Some(OsStr::new("xtask")),
            Some(OsStr::new("/checkouts/other/xtask")),
        );
        assert_eq!(root, Path::new("/checkouts/other"));
    }

    #[test]
    fn another_packages_variables_or_none_leave_the_compiled_in_workspace() {
        let inherited = workspace_root(
            Some(OsStr::new("perf-tests")),
            Some(OsStr::new("/checkouts/other/tests")),
        );
        assert_eq!(inherited, compiled_in_root());
        assert_eq!(workspace_root(None, None), compiled_in_root());
        assert_eq!(
            workspace_root(None, Some(OsStr::new("/checkouts/other/xtask"))),
            compiled_in_root()
        );
    }
}
