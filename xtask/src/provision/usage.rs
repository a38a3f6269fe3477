//! What a server uses now, read where provisioning started it: CPU time (user + system) and
//! memory of Postgres and of Redis, for the load suite's sampling (`suites::resources`).
//!
//! Native servers: each server is its process tree (the postmaster forks a backend per
//! connection). CPU time is `utime + stime + cutime + cstime` summed over the live tree from
//! `/proc/<pid>/stat` (a backend that exited was reaped by the postmaster, so its time moved
//! into the postmaster's `cutime`/`cstime` and is counted exactly once); memory is `VmRSS`
//! from `/proc/<pid>/status` summed over the tree (shared memory touched by several processes,
//! e.g. Postgres's shared buffers, counts once per process). Docker: the container's cgroup
//! statistics from the engine's stats endpoint (cumulative CPU time; anonymous memory).
//! External servers are not read.
//!
//! Must never: report a number it did not read (what cannot be read is said, not estimated),
//! or signal or otherwise touch the servers' processes.

use std::collections::HashMap;

use super::ServerProcesses;

/// CPU time and memory of one server at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Resident memory now, bytes.
    pub memory_bytes: u64,
}

/// What one `/proc/<pid>/stat` line says that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
    ppid: u32,
    /// `utime + stime + cutime + cstime`, in clock ticks.
    cpu_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<StatFields> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15), cutime (16), cstime (17).
    let field = |n: usize| fields.get(n - 3)?.parse::<i64>().ok();
    let cpu: i64 = [14, 15, 16, 17]
        .into_iter()
        .map(field)
        .sum::<Option<i64>>()?;
    Some(StatFields {
        ppid: u32::try_from(field(4)?).ok()?,
        cpu_ticks: u64::try_from(cpu).ok()?,
    })
}

/// `VmRSS` from `/proc/<pid>/status`, in bytes (`None` for a kernel thread or a zombie).
fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|ticks| u64::try_from(ticks).ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// `root` and every live descendant of it.
fn process_tree(root: u32) -> std::io::Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read: skip it.
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(stat) = parse_stat(&text)
        {
            children.entry(stat.ppid).or_default().push(pid);
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        if let Some(kids) = children.get(&tree[next]) {
            tree.extend(kids);
        }
        next += 1;
    }
    Ok(tree)
}

/// CPU time and RSS of the process tree of `root`. An error when `root` itself is gone.
fn read_tree(root: u32) -> Result<Reading, String> {
    let ns_per_tick = 1_000_000_000 / clock_ticks_per_second();
    let tree = process_tree(root).map_err(|e| format!("cannot list /proc: {e}"))?;
    let mut reading = Reading::default();
    for pid in tree {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
        match (stat, status) {
            (Ok(stat), Ok(status)) => {
                let fields = parse_stat(&stat)
                    .ok_or_else(|| format!("/proc/{pid}/stat is not what Linux writes: {stat}"))?;
                reading.cpu_ns += fields.cpu_ticks * ns_per_tick;
                reading.memory_bytes += parse_status_rss(&status).unwrap_or(0);
            }
            (Err(e), _) | (_, Err(e)) if pid == root => {
                return Err(format!("server process {root} is gone: {e}"));
            }
            _ => {} // a backend that exited meanwhile: its time is in its parent's cutime
        }
    }
    Ok(reading)
}

/// Reads both servers' current resource use.
pub struct Sampler {
    source: Source,
}

/// Where a [`Sampler`] reads.
enum Source {
    Native {
        postgres: u32,
        redis: u32,
    },
    Docker {
        client: testcontainers::bollard::Docker,
        postgres: String,
        redis: String,
    },
}

impl Sampler {
    /// A sampler for the servers, or why there can be none.
    pub async fn new(processes: ServerProcesses) -> Result<Sampler, String> {
        let source = match processes {
            ServerProcesses::Native { postgres, redis } => Source::Native { postgres, redis },
            ServerProcesses::Docker { postgres, redis } => {
                let client = testcontainers::core::client::docker_client_instance()
                    .await
                    .map_err(|e| format!("cannot reach the Docker engine for stats: {e}"))?;
                Source::Docker {
                    client,
                    postgres,
                    redis,
                }
            }
            ServerProcesses::Unavailable { reason } => return Err(reason),
        };
        Ok(Sampler { source })
    }

    /// How memory is read, for the report.
    pub fn memory_source(&self) -> &'static str {
        match self.source {
            Source::Native { .. } => "sum of VmRSS over the server's process tree",
            Source::Docker { .. } => "the container's cgroup anonymous memory",
        }
    }

    /// (Postgres, Redis) now.
    pub async fn read(&self) -> Result<(Reading, Reading), String> {
        match &self.source {
            Source::Native { postgres, redis } => {
                let (postgres, redis) = (*postgres, *redis);
                tokio::task::spawn_blocking(move || Ok((read_tree(postgres)?, read_tree(redis)?)))
                    .await
                    .map_err(|e| format!("reading /proc: {e}"))?
            }
            Source::Docker {
                client,
                postgres,
                redis,
            } => {
                let (postgres, redis) = tokio::join!(
                    container_reading(client, postgres),
                    container_reading(client, redis)
                );
                Ok((postgres?, redis?))
            }
        }
    }
}

async fn container_reading(
    client: &testcontainers::bollard::Docker,
    id: &str,
) -> Result<Reading, String> {
    use futures_util::StreamExt as _;
    use testcontainers::bollard::query_parameters::StatsOptions;

    let options = StatsOptions {
        stream: false,
        one_shot: true,
    };
    let stats = client
        .stats(id, Some(options))
        .next()
        .await
        .ok_or_else(|| format!("container {id}: the engine sent no stats"))?
        .map_err(|e| format!("container {id}: stats: {e}"))?;
    let cpu_ns = stats
        .cpu_stats
        .and_then(|c| c.cpu_usage)
        .and_then(|u| u.total_usage)
        .ok_or_else(|| format!("container {id}: stats have no cpu_usage.total_usage"))?;
    let memory = stats
        .memory_stats
        .ok_or_else(|| format!("container {id}: stats have no memory_stats"))?;
    // cgroup v2 says `anon`, v1 `rss`: memory the processes own, without the page cache.
    let memory_bytes = memory
        .stats
        .as_ref()
        .and_then(|s| s.get("anon").or_else(|| s.get("rss")).copied())
        .ok_or_else(|| format!("container {id}: memory_stats have neither anon nor rss"))?;
    Ok(Reading {
        cpu_ns,
        memory_bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stat_of_this_process_parses_and_counts_its_cpu() {
        let me = std::process::id();
        // Burn a little CPU so that at least one tick is charged.
        let started = std::time::Instant::now();
        let mut x = 0_u64;
        while started.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let text = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let fields = parse_stat(&text).unwrap();
        assert_eq!(fields.ppid, nix::unistd::getppid().as_raw() as u32);
        assert!(fields.cpu_ticks > 0, "{text}");
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_fields() {
        let text = "42 (a (weird) name) S 7 42 42 0 -1 4194304 100 0 0 0 \
                    30 12 5 3 20 0 1 0 100 1000 50 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(StatFields {
                ppid: 7,
                cpu_ticks: 50
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_of_this_process_has_a_plausible_rss() {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss = parse_status_rss(&text).unwrap();
        // A running test binary is resident: more than a page, less than the machine.
        assert!(rss > 4096 && rss < 64 << 30, "{rss}");
        assert_eq!(parse_status_rss("Name:\tkthreadd\nState:\tS\n"), None);
    }

    #[test]
    fn the_tree_of_this_process_includes_a_child_and_sums_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let me = std::process::id();
        let tree = process_tree(me).unwrap();
        let own = read_tree(me);
        let child_status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(tree[0], me);
        assert!(tree.contains(&child.id()), "{tree:?}");
        let own = own.unwrap();
        let child_rss = parse_status_rss(&child_status.unwrap());
        // The tree is this process plus the child (and any other test's children).
        let child_rss = child_rss.expect("a sleeping child is resident");
        assert!(own.memory_bytes > child_rss, "{own:?} vs child {child_rss}");
        assert!(own.cpu_ns > 0, "{own:?}");
        assert!(
            read_tree(u32::MAX - 1).is_err(),
            "a missing root is an error"
        );
    }
}
