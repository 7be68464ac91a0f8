#!/usr/bin/env bash
# One command from a fresh clone: install everything the tests need, then run the whole suite.
# Extra arguments go to pytest (e.g. -k sqlite, -x).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" dev
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    # redis-tools has redis-cli, which creates the test cluster (--cluster create).
    echo "installing redis-server and redis-tools (the Redis tests run a real server and cluster)..."
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
# A whole run (only output flags given) also checks the coverage floor of pyproject.toml;
# a subset (-k, a path) would fall under it, so it runs without coverage.
cov=(--cov --cov-report=)
for arg in "$@"; do
    case "$arg" in -q|-qq|-v|-vv|-x|-ra|-rA) ;; *) cov=() ;; esac
done
set +e
.venv/bin/python -m pytest "${cov[@]}" "$@"
status=$?
set -e
if [ "$status" = 0 ] && [ "${#cov[@]}" -gt 0 ]; then
    # Checked here too: the exit status is what CI reads, whatever pytest's plugins do.
    if ! total=$(.venv/bin/python -m coverage report --format=total); then
        echo "branch coverage ${total}% is under the floor (fail_under in pyproject.toml)"
        exit 1
    fi
    echo "branch coverage: ${total}% (floor: fail_under in pyproject.toml)"
fi
exit "$status"
