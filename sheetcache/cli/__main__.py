"""``python -m sheetcache.cli``: the same as the ``sheetcache`` console script."""

from sheetcache.cli import main

if __name__ == "__main__":
    main()
