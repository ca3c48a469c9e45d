# Shared by the scripts in scripts/: sourced, never run.
#
# Every script that installs something installs it from Debian's packages
# (apt) or from a registry (crates.io, PyPI, npm), pinned, into the project's
# own folders under target/. Nothing is taken from ~/.cargo/bin or rustup's
# internals by accident: guest builds run with a plain system PATH.

# shellcheck shell=bash

# The repository root.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# A PATH with only the system's folders: what a fresh Debian machine has.
system_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# die MESSAGE: print "<script>: MESSAGE" and exit 1.
die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# say MESSAGE: progress on stderr, prefixed by the script's name.
say() {
    echo "$(basename "$0"): $*" >&2
}

# missing_packages PKG...: prints the Debian packages among PKG that are not installed.
missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

# apt_install PKG...: installs Debian packages as root, after refreshing the
# package lists. A machine image's lists can be months old: installing from
# them gives old versions (a Rust too old for the workspace) or nothing.
# The lists are refreshed once per run of scripts/test or scripts/run
# (MOZAIKS_APT_UPDATED is passed down to the scripts they call).
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "no apt-get on this machine; install $* with your system's package manager"
    [[ "$(id -u)" == 0 ]] || die "need root to run: apt-get update && apt-get install -y $*"
    if [[ -z "${MOZAIKS_APT_UPDATED:-}" ]]; then
        say "apt-get update"
        apt-get update >&2 || die "apt-get update failed"
        export MOZAIKS_APT_UPDATED=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
        die "apt-get install $* failed"
}

# version_ge A B: true if version A (1.2.3) is at least B.
version_ge() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

# rust_version_of TOOL: the x.y.z a `rustc`/`cargo` binary reports, or
# nothing (and success) when there is no such tool.
rust_version_of() {
    { "$1" --version 2>/dev/null || true; } | sed -n -E 's/^[a-z-]+ ([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/p'
}

# required_rust_version: the highest `rust-version` the repository's crates
# declare (the workspace and the guest SDK).
required_rust_version() {
    sed -n -E 's/^rust-version[[:space:]]*=[[:space:]]*"([0-9.]+)".*/\1/p' \
        "$repo/Cargo.toml" "$repo/sdk/Cargo.toml" | sort -V | tail -n 1
}
