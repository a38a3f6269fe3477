//! The environment fingerprint of a run: machine class, CPU, OS, toolchain, valgrind, the
//! services that served, and the hash of the configuration that shapes the data. Reads
//! `/proc` and asks `rustc`, `valgrind` and `gungraun-runner` for their versions.

use sha2::{Digest, Sha256};

use crate::config::{self, PerfMetadata};
use crate::provision::ServicesDescription;
use crate::record::Environment;

/// Captures the environment of this machine and run.
pub fn capture(metadata: &PerfMetadata, services: &ServicesDescription) -> Environment {
    let cpu_model = cpu_model();
    let cores = cores();
    let machine_class = machine_class_of(metadata, &cpu_model, cores);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Environment {
        machine_class,
        cpu_model,
        cores,
        os: format!(
            "{} {} {kernel}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )
        .trim()
        .to_owned(),
        rustc: version_of("rustc", "--version").unwrap_or_else(|| "unknown".to_owned()),
        valgrind: version_of("valgrind", "--version"),
        // The runner the instructions suite uses: PATH's, or the harness's own (`setup`).
        gungraun_runner: {
            let layout = crate::workspace::Layout::new(None);
            version_of(
                crate::setup::runner_program(&layout.root, &layout.target_dir),
                "--version",
            )
        },
        services: services.clone(),
        config_hash: config::measurement_config_hash(metadata),
    }
}

/// This machine's class: the configured one, or `auto`'s derivation from the CPU.
pub fn machine_class(metadata: &PerfMetadata) -> String {
    machine_class_of(metadata, &cpu_model(), cores())
}

fn machine_class_of(metadata: &PerfMetadata, cpu_model: &str, cores: usize) -> String {
    if metadata.machine_class == "auto" {
        auto_machine_class(cpu_model, cores)
    } else {
        metadata.machine_class.clone()
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `<os>-<arch>-<cores>c-<8 hex digits of the CPU model's hash>`.
pub fn auto_machine_class(cpu_model: &str, cores: usize) -> String {
    let digest = Sha256::digest(cpu_model.as_bytes());
    let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{cores}c-{short}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn version_of(program: impl AsRef<std::ffi::OsStr>, flag: &str) -> Option<String> {
    let output = std::process::Command::new(program)
        .arg(flag)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
}
