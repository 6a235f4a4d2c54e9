#!/usr/bin/env bash
# Install the service, load the sample sitting once, and serve it:
#   bash scripts/demo.sh          → http://127.0.0.1:8000/   (PORT=8080 / HOST=0.0.0.0 to change)
# The database is the embedded default, SQLite in instance/ballot.sqlite3 (or
# BALLOT_DATABASE_URL). Sample data is loaded only into a database with no body yet.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/env.sh

if [ -z "${BALLOT_SKIP_INSTALL:-}" ]; then
    apt_install fonts-wqy-zenhei   # Chinese font for printed ballots and PDF records
    use_project_python
    echo "== pip install -e . into $py"
    pip_install -e .
else
    use_project_python
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
