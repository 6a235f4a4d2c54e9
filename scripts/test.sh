#!/usr/bin/env bash
# Install what the tests need, then run them: bash scripts/test.sh [pytest args...]
# (bash scripts/test.sh --install-only: install and stop.)
#
# Installs the project with its test extras (pip install -e '.[test]') and, when run as
# root, the Debian packages the tests use if any is missing. Set BALLOT_SKIP_INSTALL=1
# to skip installing. Tests run on SQLite; set BALLOT_TEST_DATABASE_URL to an admin URL
# of a PostgreSQL server to run them there (scripts/pg-throwaway run scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql poppler-utils zbar-tools fonts-wqy-zenhei chromium chromium-driver)

# Pick the Python: $PYTHON, else python3/python. Debian's own Python refuses pip
# installs (PEP 668), so on it we use a project venv in .venv instead.
pick_python() {
    py=${PYTHON:-}
    if [ -z "$py" ]; then
        if [ -x .venv/bin/python ]; then py=.venv/bin/python
        elif command -v python3 >/dev/null 2>&1; then py=python3
        else py=python; fi
    fi
    if "$py" - <<'PY'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)
PY
    then
        echo "== $py is the system's Python (externally managed): using a venv in .venv"
        if ! "$py" -m venv .venv; then
            apt_install "python3-venv"
            "$py" -m venv .venv
        fi
        py=.venv/bin/python
    fi
}

missing_debs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

apt_install() {
    local missing
    missing=$(missing_debs "$@")
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "== not root (or no apt-get): please install these Debian packages: $missing" >&2
        return 0
    fi
    echo "== apt-get install $missing"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt run rather than fail on its lock.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
}

if [ -z "${BALLOT_SKIP_INSTALL:-}" ]; then
    apt_install "${APT_PACKAGES[@]}"
    pick_python
    echo "== pip install -e '.[test]'"
    "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
    if [ "${1:-}" = "--install-only" ]; then
        "$py" -m pip list --disable-pip-version-check 2>/dev/null \
            | grep -iE '^(flask|sqlalchemy|alembic|granian|psycopg|pytest|hypothesis|playwright) ' || true
        exit 0
    fi
else
    pick_python
fi

echo "== $("$py" --version) -m pytest $* (database: ${BALLOT_TEST_DATABASE_URL:-SQLite})"
exec "$py" -m pytest "$@"
