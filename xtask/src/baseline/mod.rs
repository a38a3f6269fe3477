//! Where baselines come from, and the only code that knows git: `git` (HEAD, revisions, the
//! default base, first-parent ancestors, worktrees), `store` (the baseline branch of records
//! per machine class and commit) and `lookup` (which record is the base, how it was chosen and
//! what was passed over; the target branch's records along first parents, shared by `perf`'s
//! noise bands and plots and by `perf history`).

pub mod git;
pub mod lookup;
pub mod store;

pub use git::{BaseChoice, BaselineError, GitRepo, HeadState, Worktree};
pub use lookup::{BasePlan, BaseRequest, Lineage};
pub use store::BaselineStore;
