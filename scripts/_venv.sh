# Sourced by the other scripts: make .venv (once) and install sheetcache with the extras "$1".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PY" --version 2>&1)..."
    "$PY" -m venv .venv
fi
echo "installing sheetcache (editable) with the extras [$1] and their dependencies into .venv..."
# Quiet, but show errors; re-running is fast when everything is installed already.
# (The grep drops pip's notes about this machine's unreachable mirror folders.)
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$1]" 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
