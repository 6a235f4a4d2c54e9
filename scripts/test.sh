#!/usr/bin/env bash
# Install what the tests need, then run them: bash scripts/test.sh [pytest args...]
# (bash scripts/test.sh --install-only: install and stop.)
#
# Installs the project with its test extras (pip install -e '.[test]') into the project's
# own environment (.venv, see scripts/lib/env.sh) and, when run as
# root, the Debian packages the tests use if any is missing. Set BALLOT_SKIP_INSTALL=1
# to skip installing. Tests run on SQLite; set BALLOT_TEST_DATABASE_URL to an admin URL
# of a PostgreSQL server to run them there (scripts/pg-throwaway run scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql poppler-utils zbar-tools fonts-wqy-zenhei chromium chromium-driver)

. scripts/lib/env.sh

if [ -z "${BALLOT_SKIP_INSTALL:-}" ]; then
    apt_install "${APT_PACKAGES[@]}"
    use_project_python
    echo "== pip install -e '.[test]' into $py"
    pip_install -e '.[test]'
    if [ "${1:-}" = "--install-only" ]; then
        "$py" -m pip list --disable-pip-version-check 2>/dev/null \
            | grep -iE '^(flask|sqlalchemy|alembic|granian|psycopg|pytest|hypothesis|playwright) ' || true
        exit 0
    fi
else
    use_project_python
fi

echo "== $("$py" --version) -m pytest $* (database: ${BALLOT_TEST_DATABASE_URL:-SQLite})"
exec "$py" -m pytest "$@"
