#!/usr/bin/env bash
# The workflow linters `.ci/run` runs on `.github/workflows` (zizmor, check-jsonschema), at
# pinned versions, from PyPI into a Python virtual environment under target/ci-tools,
# idempotently (check, then act). Only CI needs them: the tests do not.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
        apt_install python3-venv
        python3 -m venv "$tools"
    }
    "$tools/bin/pip" install --quiet --disable-pip-version-check \
        "zizmor==$zizmor_version" "check-jsonschema==$check_jsonschema_version" >"$logs/pip.log" 2>&1 \
        || { log "pip install failed; see $logs/pip.log"; exit 1; }
fi
