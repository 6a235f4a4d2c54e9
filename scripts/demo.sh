#!/usr/bin/env bash
# Install the service, load the sample sitting once, and serve it:
#   bash scripts/demo.sh          → http://127.0.0.1:8000/   (PORT=8080 / HOST=0.0.0.0 to change)
# The database is the embedded default, SQLite in instance/ballot.sqlite3 (or
# BALLOT_DATABASE_URL). Sample data is loaded only into a database with no body yet.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
    py=${PYTHON:-}
    if [ -z "$py" ]; then
        if [ -x .venv/bin/python ]; then py=.venv/bin/python
        elif command -v python3 >/dev/null 2>&1; then py=python3
        else py=python; fi
    fi
    # Debian's own Python refuses pip installs (PEP 668): use a project venv instead.
    if "$py" - <<'PY'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)
PY
    then
        echo "== $py is the system's Python (externally managed): using a venv in .venv"
        if ! "$py" -m venv .venv; then
            apt_install python3-venv
            "$py" -m venv .venv
        fi
        py=.venv/bin/python
    fi
}

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
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
}

if [ -z "${BALLOT_SKIP_INSTALL:-}" ]; then
    apt_install fonts-wqy-zenhei   # Chinese font for printed ballots and PDF records
    pick_python
    echo "== pip install -e ."
    "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e .
else
    pick_python
fi

# The console script lives beside the interpreter's scripts; run the same entry point
# through the interpreter if it is not there (e.g. a pyenv shim not yet rehashed).
exe="$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/ballot-service"
if [ -x "$exe" ]; then
    bs=("$exe")
else
    bs=("$py" -c 'import sys; from ballot_service.cli import main; sys.exit(main(prog_name="ballot-service"))')
fi

# `demo` creates or upgrades the database (SQLite in instance/ unless BALLOT_DATABASE_URL
# says otherwise), loads the sample data if it has no body yet, then serves.
# The sample bodies get signing keys; a demo without a passphrase of its own uses a
# published one — never for a real session.
if [ -z "${BALLOT_KEY_PASSPHRASE:-}" ]; then
    export BALLOT_KEY_PASSPHRASE=demo-only-passphrase
    echo "== BALLOT_KEY_PASSPHRASE not set: using the demo passphrase (not for a real session)"
fi
echo "== ballot-service demo"
exec "${bs[@]}" demo --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
