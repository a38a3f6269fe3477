#!/usr/bin/env bash
# What the tests add to `cargo xtask setup` on a fresh machine of this project's kind,
# idempotently (check, then act): the pinned toolchain, a running Docker engine, Chromium (the
# report's browser test), the local Postgres and Redis images (no registry is reachable here, so
# they are built from Debian's packages), gungraun-runner on PATH (the workflow-lifecycle test
# runs the workflows' own install step, which looks there). Then `cargo xtask setup --services
# native` installs what the harness itself needs (redis-server, valgrind), as `cargo xtask perf`
# would on first use.
#
# `cargo test --workspace` runs it once per test binary that needs the machine
# (`perf_tests::prepare_machine`), so the README's test command needs no step before it; CI's
# `.ci/run` runs it first, to time it apart from the tests.
#
# Safe to run again on a machine an earlier run used. Prints one line per step.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# 0. The toolchain rust-toolchain.toml pins. A machine whose rustup has that version only as
#    "stable" gets it linked under its own name (no download); any other machine installs it.
pinned="$(sed -n 's/^channel = "\(.*\)"$/\1/p' "$root/rust-toolchain.toml")"
if [ -z "$pinned" ]; then
    log "rust-toolchain.toml names no channel"; exit 1
elif rustup toolchain list | grep -q "^$pinned-"; then
    log "toolchain $pinned is installed"
elif [ "$(rustc +stable --version 2>/dev/null | awk '{print $2}')" = "$pinned" ]; then
    log "linking the stable toolchain as $pinned"
    rustup toolchain link "$pinned" "$(rustc +stable --print sysroot)"
else
    log "installing toolchain $pinned"
    rustup toolchain install "$pinned" --profile minimal --component clippy,rustfmt
fi

# 1. Debian packages: docker.io (docker services), debootstrap (to build the local images),
#    chromium (the tests check report.html in a real browser).
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
else
    log "dockerd, debootstrap and chromium are installed"
fi

# 2. A Docker engine that answers.
if docker info >/dev/null 2>&1; then
    log "docker engine answers"
else
    log "starting dockerd"
    as_root sh -c "nohup dockerd >'$logs/dockerd.log' 2>&1 &"
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not answer in 60 s; see $logs/dockerd.log"; exit 1; }
    log "docker engine answers"
fi

# 3. Local images local/postgres:15 and local/redis:7 from Debian's packages.
pg_image="${PERF_POSTGRES_IMAGE:-local/postgres:15}"
redis_image="${PERF_REDIS_IMAGE:-local/redis:7}"
# The Postgres image carries the checksum of the entrypoint it was built with: an image built
# with an older one gets the current one copied in (no rebuild from Debian's packages).
entrypoint="$here/images/postgres-entrypoint.sh"
entrypoint_sum="$(sha256sum "$entrypoint" | cut -c1-64)"
entrypoint_label="perf.entrypoint-sha256"
if docker image inspect "$pg_image" >/dev/null 2>&1 && docker image inspect "$redis_image" >/dev/null 2>&1; then
    have_sum="$(docker image inspect --format "{{ index .Config.Labels \"$entrypoint_label\" }}" "$pg_image" 2>/dev/null || true)"
    if [ "$have_sum" = "$entrypoint_sum" ]; then
        log "images $pg_image and $redis_image exist"
    else
        container="$(docker create "$pg_image")"
        docker cp "$entrypoint" "$container:/usr/local/bin/docker-entrypoint.sh"
        docker commit --change "LABEL $entrypoint_label=$entrypoint_sum" "$container" "$pg_image" >/dev/null
        docker rm "$container" >/dev/null
        log "images $pg_image and $redis_image exist; $pg_image has the current entrypoint now"
    fi
else
    mirror="$(grep -h -m1 -oE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1 || true)"
    if [ -z "$mirror" ]; then
        mirror="$(grep -h -m1 -oE '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | sed 's/^URIs: *//')"
    fi
    [ -n "$mirror" ] || { log "cannot find the Debian mirror apt uses"; exit 1; }
    rootfs="$(mktemp -d -t perf-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' EXIT
    log "debootstrap into $rootfs from $mirror"
    as_root debootstrap --variant=minbase --include=postgresql-15,redis-server bookworm "$rootfs" "$mirror" >"$logs/debootstrap.log" 2>&1 \
        || { log "debootstrap failed; see $logs/debootstrap.log"; exit 1; }
    install -m 0755 "$entrypoint" "$rootfs/usr/local/bin/docker-entrypoint.sh"
    rm -rf "$rootfs/var/lib/postgresql/15/main"
    tar -C "$rootfs" -c . | docker import \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
        --change 'ENV PGDATA=/var/lib/postgresql/data' \
        --change "LABEL $entrypoint_label=$entrypoint_sum" \
        --change 'EXPOSE 5432' - "$pg_image" >/dev/null
    tar -C "$rootfs" -c . | docker import \
        --change 'ENTRYPOINT ["redis-server","--protected-mode","no","--save","","--appendonly","no"]' \
        --change 'EXPOSE 6379' - "$redis_image" >/dev/null
    log "built $pg_image and $redis_image"
fi

# 4. gungraun-runner at the version of the gungraun crate in Cargo.lock.
want="$(awk '/^name = "gungraun"$/ { getline; gsub(/[^0-9.]/, "", $0); print; exit }' "$root/Cargo.lock" 2>/dev/null || true)"
have="$(gungraun-runner --version 2>/dev/null | awk '{print $2}' || true)"
if [ -n "$want" ] && [ "$have" != "$want" ]; then
    log "installing gungraun-runner $want (have: ${have:-none})"
    cargo install gungraun-runner --version "$want" --locked --quiet
else
    log "gungraun-runner ${have:-?} matches gungraun ${want:-?}"
fi
# 5. What the harness needs for every services mode the tests use (native servers included).
log "cargo xtask setup --services native"
(cd "$root" && cargo xtask setup --services native)
# A Debian package starts its service; the harness starts its own servers, so stop it.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    as_root systemctl stop redis-server || true
fi
log "machine ready"
