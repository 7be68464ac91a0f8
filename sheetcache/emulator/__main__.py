"""``python -m sheetcache.emulator [OPTIONS]``: the same as ``sheetcache emulator``, without
loading the cache, its stores or the CLI (see :mod:`sheetcache.emulator._main`).
"""

import sys

from sheetcache.emulator._main import main

if __name__ == "__main__":
    sys.exit(main())
