# Shared by scripts/demo.sh and scripts/test.sh: the project's own Python environment and
# the Debian packages it needs. Sourced, not run.
#
# Both scripts always work in the project's virtual environment (.venv beside this
# checkout), never in a global interpreter: a pyenv or system Python stays untouched, and
# two clones on one machine each have their own environment and `ballot-service`.
# BALLOT_VENV=DIR puts it elsewhere; BALLOT_VENV=none uses $PYTHON (or python3) as it is,
# for a container or CI image that is already the project's own.

# use_project_python: set $py to the project's interpreter, creating .venv if needed.
use_project_python() {
    local base=${PYTHON:-python3}
    command -v "$base" >/dev/null 2>&1 || base=python
    local venv=${BALLOT_VENV:-.venv}
    if [ "$venv" = none ]; then
        py=$base
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating the project environment in $venv (from $("$base" --version 2>&1))"
        if ! "$base" -m venv "$venv" 2>/dev/null; then
            rm -rf "$venv"
            apt_install python3-venv
            "$base" -m venv "$venv"
        fi
    fi
    py=$venv/bin/python
}

# apt_install PKG...: install the Debian packages not yet installed (as root only).
apt_install() {
    local p missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "== not root (or no apt-get): please install these Debian packages:$missing" >&2
        return 0
    fi
    echo "== apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt run rather than fail on its lock.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
}

# pip_install ARGS...: pip inside the project environment.
pip_install() {
    "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@"
}
