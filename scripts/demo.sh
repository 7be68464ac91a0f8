#!/usr/bin/env bash
# One command from a fresh clone: install, then run the demo on the embedded default (SQLite).
# Extra arguments go to `sheetcache demo` (try --latency 0.5, or --sheets-emulator).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" pydantic-ai
exec .venv/bin/sheetcache demo "$@"
