//! `cargo xtask perf publish`: a run's report (or a fork's saved comment, `--from-artifact`) to
//! the job summary and the pull request's sticky comment, through `publish`. Exit 0 when the
//! comment was created, updated, or saved as an artifact because the token may not comment;
//! every error exits 2.

use anyhow::Result;

use crate::config::Config;
use crate::exit::Outcome;
use crate::flags::PublishFlags;
use crate::publish::{self, CommentSource, PublishEnvironment, Published};
use crate::shutdown::Shutdown;

/// Publishes what the flags name; the directory is the config's output directory (`--report`,
/// or `--from-artifact`'s).
pub async fn run(
    config: &Config,
    flags: &PublishFlags,
    shutdown: &mut Shutdown,
) -> Result<Outcome> {
    let environment = PublishEnvironment::from_process()?;
    let dir = config.layout.out_dir.clone();
    let source = if flags.from_artifact.is_some() {
        CommentSource::Artifact { dir }
    } else {
        CommentSource::Report { dir }
    };
    let published = shutdown
        .until_stopped(publish::publish(&source, flags.pr, &environment))
        .await?;
    match &published {
        Published::SavedAsArtifact { .. } => eprintln!("warning: {published}"),
        _ => println!("publish: {published}"),
    }
    Ok(Outcome::Success)
}
