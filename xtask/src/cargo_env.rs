//! What a cargo started from inside another cargo must not inherit: the variables cargo sets
//! for the package it runs (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, …).
//!
//! `cargo xtask` is `cargo run`, and the tests run under `cargo test`, so the harness and the
//! tests see those variables. A build script may ask to be re-run when one of them changes
//! (`ring`'s does, for `CARGO_MANIFEST_DIR` and `CARGO_PKG_NAME`), and cargo compares the value
//! in its own environment: a nested cargo that inherited them rebuilt `ring` and everything
//! above it (rustls, octocrab, the harness: about 45 s in debug on 2 cores), and the next
//! cargo started from a shell rebuilt them back. Removing them makes a nested build the same
//! build as one started from a shell, as on a CI runner.

use std::ffi::OsString;
use std::process::Command;

/// Whether cargo sets `name` for the package it builds, runs or tests (the variables of
/// "Environment variables Cargo sets for crates" that describe one package, and those of its
/// build script and tests). `CARGO` (the cargo program) and cargo's configuration variables
/// (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_TERM_*`, …) are not.
pub fn set_by_cargo_for_a_package(name: &str) -> bool {
    const NAMES: [&str; 9] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    const PREFIXES: [&str; 2] = ["CARGO_PKG_", "CARGO_BIN_EXE_"];
    NAMES.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// The variables of this process's environment that [`set_by_cargo_for_a_package`] names.
pub fn package_variables() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_str().is_some_and(set_by_cargo_for_a_package))
        .collect()
}

/// Removes [`package_variables`] from what `command` inherits: every command that starts cargo
/// (or a script that does) goes through this (a tokio command through `as_std_mut`).
pub fn remove_package_variables(command: &mut Command) -> &mut Command {
    for name in package_variables() {
        command.env_remove(name);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_variables_go_and_cargos_configuration_stays() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_xtask",
            "OUT_DIR",
        ] {
            assert!(set_by_cargo_for_a_package(name), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO_BUILD_JOBS",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_by_cargo_for_a_package(name), "{name}");
        }
    }

    /// The test binary runs under `cargo test`, which sets the package's variables.
    #[test]
    fn under_cargo_test_the_package_variables_are_found() {
        let found = package_variables();
        assert!(
            found.iter().any(|name| name == "CARGO_MANIFEST_DIR")
                && found.iter().any(|name| name == "CARGO_PKG_NAME"),
            "{found:?}"
        );
        assert!(!found.iter().any(|name| name == "CARGO"), "{found:?}");
    }
}
