//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds each file, but cargo
//! only notices edits of files it already knows, not new ones.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
