//! Where things are: the workspace root, the cargo target directory and the output directory
//! of the harness. Paths only; nothing here reads or writes files.

use std::path::{Path, PathBuf};

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
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives inside the workspace")
            .to_path_buf();
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
