# What the scripts of .ci/ share (sourced, not run): where the workspace and the setup logs
# are, one log line per step, and running as root (sudo when not root) with apt-get updated
# once per script.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
logs="$root/target/setup-logs"
mkdir -p "$logs"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=no
apt_install() {
    if [ "$apt_updated" = no ]; then
        as_root apt-get update -q >/dev/null
        apt_updated=yes
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}
