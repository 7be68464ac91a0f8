"""Table detection for ``values.append`` stays right while a sheet changes under it.

The emulator caches the block of dense rows it found last time (appending to a 100,000-row
sheet must not rescan it); this checks the cached answers against a plain flood fill after
random appends, writes, clears and row deletions.
"""

from __future__ import annotations

import random

from sheetcache.emulator._state import Sheet


def _flood(rows: list[list[str]], r: int, c: int) -> tuple[int, int, int, int]:
    def filled(y: int, x: int) -> bool:
        return 0 <= y < len(rows) and 0 <= x < len(rows[y]) and rows[y][x] != ""

    seen = {(r, c)}
    todo = [(r, c)]
    while todo:
        y, x = todo.pop()
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if (ny, nx) not in seen and filled(ny, nx):
                seen.add((ny, nx))
                todo.append((ny, nx))
    ys = [y for y, _ in seen]
    xs = [x for _, x in seen]
    return min(ys), max(ys) + 1, min(xs), max(xs) + 1


def _expected(rows: list[list[str]]) -> tuple[int, int, int, int] | None:
    for r in range(len(rows) - 1, -1, -1):
        for c in range(len(rows[r]) - 1, -1, -1):
            if rows[r][c] != "":
                return _flood(rows, r, c)
    return None


def test_cached_table_detection_matches_a_flood_fill() -> None:
    rng = random.Random(20240607)
    for _ in range(40):
        sheet = Sheet(
            {"sheetId": 0, "title": "t", "gridProperties": {"rowCount": 500, "columnCount": 8}}
        )
        for _ in range(60):
            action = rng.random()
            width = rng.randint(1, 6)
            if action < 0.55:
                table = sheet.find_table(0, 500, 0, 8)
                at, left = (table[1], table[2]) if table else (0, 0)
                width = min(width, 8 - left)
                block = [
                    [("" if rng.random() < 0.08 else f"v{rng.randint(0, 9)}") for _ in range(width)]
                    for _ in range(rng.randint(1, 4))
                ]
                if width > 0 and at + len(block) <= 500:
                    sheet.write(at, left, block, True)
            elif action < 0.75 and sheet.rows:
                r = rng.randrange(len(sheet.rows))
                sheet.write(r, rng.randrange(4), [[rng.choice(["", "x"])]], True)
            elif action < 0.9 and sheet.rows:
                r = rng.randrange(len(sheet.rows))
                sheet.clear(r, r + 1, 0, rng.randint(1, 8))
            elif sheet.rows:
                r = rng.randrange(len(sheet.rows))
                sheet.delete("ROWS", r, r + 1)
                sheet.set_size(500, 8)
            assert sheet.find_table(0, 500, 0, 8) == _expected(sheet.rows)
