//! TEMPORARY scratch tests that start real servers. Must be removed before hand-off.
#![allow(clippy::all)]
use super::*;
use std::sync::Mutex;
use std::time::Instant;

fn opts(mode: ServicesMode, pg: &str, rd: &str) -> ProvisionOptions {
    ProvisionOptions {
        mode,
        postgres_image: ImageChoice {
            reference: pg.into(),
            override_variable: POSTGRES_IMAGE_VARIABLE,
        },
        redis_image: ImageChoice {
            reference: rd.into(),
            override_variable: REDIS_IMAGE_VARIABLE,
        },
    }
}

struct Lines(Mutex<Vec<String>>);
impl Lines {
    fn new() -> Self {
        Lines(Mutex::new(Vec::new()))
    }
    fn f(&self) -> impl Fn(&str) + Sync + '_ {
        move |l: &str| {
            eprintln!("[{:?}] {l}", std::thread::current().id());
            self.0.lock().unwrap().push(l.to_owned())
        }
    }
    fn ready(&self, svc: &str) -> String {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(&format!("services: {svc} ready at ")))
            .cloned()
            .expect("ready line")
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[i..];
    let end = rest.find([',', ')']).unwrap_or(rest.len());
    Some(&rest[..end])
}
fn addr(line: &str) -> String {
    line.split(" ready at ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

fn answers(addr: &str) -> bool {
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(300)).is_ok()
}

fn check_gone(lines: &Lines) {
    for svc in ["postgres", "redis"] {
        let l = lines.ready(svc);
        let a = addr(&l);
        assert!(!answers(&a), "{svc} still answers at {a}");
        if let Some(pid) = field(&l, "pid") {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "pid {pid} alive"
            );
        }
        if let Some(dir) = field(&l, "dir") {
            assert!(!std::path::Path::new(dir).exists(), "dir {dir} exists");
        }
        if let Some(id) = field(&l, "container") {
            let out = std::process::Command::new("docker")
                .args(["ps", "-a", "-q", "--no-trunc"])
                .output()
                .unwrap();
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(id),
                "container {id} still there"
            );
        }
    }
    eprintln!("checked gone");
}

async fn use_them(s: &Services) {
    let v = probe::postgres_once(&s.postgres_url("postgres"))
        .await
        .unwrap();
    let r = probe::redis_once(&s.redis_url()).await.unwrap();
    eprintln!("versions {v} / {r}; desc {:?}", s.description());
}

#[tokio::test(flavor = "multi_thread")]
async fn native_start_teardown() {
    let lines = Lines::new();
    let t = Instant::now();
    let s = Services::start(&opts(ServicesMode::Native, "x", "y"), &lines.f())
        .await
        .unwrap();
    eprintln!("native ready after {:?}", t.elapsed());
    use_them(&s).await;
    assert!(s.owns_servers());
    let t = Instant::now();
    s.teardown().await.unwrap();
    eprintln!("native teardown {:?}", t.elapsed());
    check_gone(&lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_start_teardown() {
    let lines = Lines::new();
    let t = Instant::now();
    let s = Services::start(
        &opts(ServicesMode::Docker, "local/postgres:15", "local/redis:7"),
        &lines.f(),
    )
    .await
    .unwrap();
    eprintln!("docker ready after {:?}", t.elapsed());
    use_them(&s).await;
    let t = Instant::now();
    s.teardown().await.unwrap();
    eprintln!("docker teardown {:?}", t.elapsed());
    check_gone(&lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_missing_image() {
    let lines = Lines::new();
    let t = Instant::now();
    let e = Services::start(
        &opts(
            ServicesMode::Docker,
            "nonexistent/postgres:0",
            "local/redis:7",
        ),
        &lines.f(),
    )
    .await
    .unwrap_err();
    eprintln!("after {:?}: {e}", t.elapsed());
    assert!(matches!(e, ProvisionError::ImageUnavailable { .. }));
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "-q"])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "left containers: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_missing_image_falls_back() {
    let lines = Lines::new();
    let s = Services::start(
        &opts(
            ServicesMode::Auto,
            "nonexistent/postgres:0",
            "local/redis:7",
        ),
        &lines.f(),
    )
    .await
    .unwrap();
    assert_eq!(s.description().mode, ServicesMode::Native);
    s.teardown().await.unwrap();
    check_gone(&lines);
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "-q"])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_prefers_docker() {
    let lines = Lines::new();
    let s = Services::start(
        &opts(ServicesMode::Auto, "local/postgres:15", "local/redis:7"),
        &lines.f(),
    )
    .await
    .unwrap();
    assert_eq!(s.description().mode, ServicesMode::Docker);
    s.teardown().await.unwrap();
    check_gone(&lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn external_on_native() {
    let lines = Lines::new();
    let s = Services::start(&opts(ServicesMode::Native, "x", "y"), &lines.f())
        .await
        .unwrap();
    unsafe {
        std::env::set_var(
            "DATABASE_URL",
            s.postgres_url("postgres") + "?sslmode=disable",
        );
        std::env::set_var("REDIS_URL", s.redis_url());
    }
    let l2 = Lines::new();
    let e = Services::start(&opts(ServicesMode::External, "x", "y"), &l2.f())
        .await
        .unwrap();
    assert!(!e.owns_servers());
    eprintln!("ext url {}", e.postgres_url("other db"));
    e.teardown().await.unwrap();
    assert!(answers(&addr(&lines.ready("postgres"))));
    unsafe {
        std::env::remove_var("DATABASE_URL");
    }
    let err = Services::start(&opts(ServicesMode::External, "x", "y"), &l2.f())
        .await
        .unwrap_err();
    eprintln!("{err}");
    s.teardown().await.unwrap();
    check_gone(&lines);
}

fn drop_test(mode: ServicesMode, how: &str) {
    let lines = Lines::new();
    let o = opts(mode, "local/postgres:15", "local/redis:7");
    match how {
        "multi" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let s = Services::start(&o, &lines.f()).await.unwrap();
                drop(s);
            });
        }
        "current" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let s = Services::start(&o, &lines.f()).await.unwrap();
                drop(s);
            });
        }
        "outside" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            let s = rt.block_on(async { Services::start(&o, &lines.f()).await.unwrap() });
            drop(rt);
            let t = Instant::now();
            drop(s);
            eprintln!("drop outside took {:?}", t.elapsed());
        }
        "panic" => {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let _s = Services::start(&o, &lines.f()).await.unwrap();
                    panic!("boom");
                });
            }));
            assert!(r.is_err());
        }
        _ => unreachable!(),
    }
    check_gone(&lines);
}

#[test]
fn drop_native_multi() {
    drop_test(ServicesMode::Native, "multi")
}
#[test]
fn drop_native_current() {
    drop_test(ServicesMode::Native, "current")
}
#[test]
fn drop_native_outside() {
    drop_test(ServicesMode::Native, "outside")
}
#[test]
fn drop_native_panic() {
    drop_test(ServicesMode::Native, "panic")
}
#[test]
fn drop_docker_multi() {
    drop_test(ServicesMode::Docker, "multi")
}
#[test]
fn drop_docker_current() {
    drop_test(ServicesMode::Docker, "current")
}
#[test]
fn drop_docker_outside() {
    drop_test(ServicesMode::Docker, "outside")
}
#[test]
fn drop_docker_panic() {
    drop_test(ServicesMode::Docker, "panic")
}

/// What testcontainers itself does when a ContainerAsync is dropped outside a runtime.
#[test]
fn tc_drop_outside_runtime() {
    use testcontainers::{GenericImage, core::IntoContainerPort, runners::AsyncRunner};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(async {
        GenericImage::new("local/redis", "7")
            .with_exposed_port(6379.tcp())
            .start()
            .await
            .unwrap()
    });
    let id = c.id().to_owned();
    drop(rt);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(c)));
    eprintln!("tc drop outside runtime panicked: {}", r.is_err());
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "-q", "--no-trunc"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&out.stdout).contains(&id);
    eprintln!("container left: {left}");
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &id])
        .output();
}

/// testcontainers drop inside runtimes.
#[test]
fn tc_drop_inside_runtimes() {
    use testcontainers::{GenericImage, core::IntoContainerPort, runners::AsyncRunner};
    for multi in [true, false] {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let id = rt.block_on(async {
            let c = GenericImage::new("local/redis", "7")
                .with_exposed_port(6379.tcp())
                .start()
                .await
                .unwrap();
            let id = c.id().to_owned();
            drop(c);
            id
        });
        let out = std::process::Command::new("docker")
            .args(["ps", "-a", "-q", "--no-trunc"])
            .output()
            .unwrap();
        eprintln!(
            "multi={multi}: container left after drop: {}",
            String::from_utf8_lossy(&out.stdout).contains(&id)
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn auto_no_engine() {
    unsafe {
        std::env::set_var("DOCKER_HOST", "unix:///nonexistent.sock");
    }
    let lines = Lines::new();
    let s = Services::start(
        &opts(ServicesMode::Auto, "local/postgres:15", "local/redis:7"),
        &lines.f(),
    )
    .await
    .unwrap();
    eprintln!("{:?}", s.description());
    s.teardown().await.unwrap();
    let e = Services::start(
        &opts(ServicesMode::Docker, "local/postgres:15", "local/redis:7"),
        &lines.f(),
    )
    .await
    .unwrap_err();
    eprintln!("{e}");
    let path = std::env::var("PATH").unwrap();
    unsafe {
        std::env::set_var("PATH", "/nonexistent");
    }
    let e = Services::start(
        &opts(ServicesMode::Auto, "local/postgres:15", "local/redis:7"),
        &lines.f(),
    )
    .await
    .unwrap_err();
    eprintln!("{e}");
    let e = Services::start(
        &opts(ServicesMode::Native, "local/postgres:15", "local/redis:7"),
        &lines.f(),
    )
    .await
    .unwrap_err();
    eprintln!("{e}");
    unsafe {
        std::env::set_var("PATH", path);
        std::env::remove_var("DOCKER_HOST");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn native_failures() {
    let path = std::env::var("PATH").unwrap();
    for (dir, t) in [("/tmp/fakepg-exit", 30), ("/tmp/fakepg-hang", 2)] {
        unsafe {
            std::env::set_var("PATH", format!("{dir}:{path}"));
        }
        let lines = Lines::new();
        let start = Instant::now();
        let e = Services::start_with_timeout(
            &opts(ServicesMode::Native, "x", "y"),
            Duration::from_secs(t),
            &lines.f(),
        )
        .await
        .unwrap_err();
        eprintln!("after {:?}:\n{e}\n---", start.elapsed());
        let out = std::process::Command::new("pgrep")
            .args(["-f", "sleep 100"])
            .output()
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "sleep left: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    unsafe {
        std::env::set_var("PATH", path);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_container_exits() {
    let lines = Lines::new();
    let start = Instant::now();
    let e = Services::start(
        &opts(ServicesMode::Docker, "local/redis:7", "local/redis:7"),
        &lines.f(),
    )
    .await
    .unwrap_err();
    eprintln!("after {:?}:\n{e}", start.elapsed());
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            "label=org.perf-harness.session",
        ])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
