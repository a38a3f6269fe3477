#!/usr/bin/env bash
# The workflow linters `.ci/run` runs on `.github/workflows` (zizmor, check-jsonschema), at
# pinned versions, from PyPI into a Python virtual environment under target/ci-tools,
# idempotently (check, then act). Only CI needs them: the tests do not.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
logs="$root/target/setup-logs"
mkdir -p "$logs"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Workflow linters at pinned versions, in target/ci-tools (a Python virtual environment).
tools="$root/target/ci-tools"
zizmor_version=1.32.0
check_jsonschema_version=0.39.0
if "$tools/bin/zizmor" --version 2>/dev/null | grep -qxF "zizmor $zizmor_version" \
    && "$tools/bin/check-jsonschema" --version 2>/dev/null | grep -qF "version $check_jsonschema_version"; then
    log "zizmor $zizmor_version and check-jsonschema $check_jsonschema_version are installed"
else
    log "installing zizmor $zizmor_version and check-jsonschema $check_jsonschema_version into $tools"
    python3 -m venv "$tools" >"$logs/venv.log" 2>&1 || {
        log "python3 -m venv failed (see $logs/venv.log): installing python3-venv"
        as_root apt-get update -q >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
        python3 -m venv "$tools"
    }
    "$tools/bin/pip" install --quiet --disable-pip-version-check \
        "zizmor==$zizmor_version" "check-jsonschema==$check_jsonschema_version" >"$logs/pip.log" 2>&1 \
        || { log "pip install failed; see $logs/pip.log"; exit 1; }
fi
