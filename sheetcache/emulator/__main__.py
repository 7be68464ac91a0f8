"""``python -m sheetcache.emulator [OPTIONS]``: the same as ``sheetcache emulator``."""

import sys

from sheetcache.cli import app

if __name__ == "__main__":
    app(["emulator", *sys.argv[1:]], prog_name="python -m sheetcache.emulator")
