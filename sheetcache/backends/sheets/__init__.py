"""``sheets://SPREADSHEET_ID/TAB``: a cache whose entries people review in Google Sheets.

See docs/sheets.md for setup, the column layout and the reviewer workflow. Needs the
``sheets`` extra (gspread, google-auth, requests, tenacity).
"""

from sheetcache.backends.sheets._admin import Check, doctor, init_worksheet
from sheetcache.backends.sheets._backend import SheetsBackend, parse_sheets_url
from sheetcache.backends.sheets._layout import HEADERS, PARTS_HEADERS

__all__ = [
    "HEADERS",
    "PARTS_HEADERS",
    "Check",
    "SheetsBackend",
    "doctor",
    "init_worksheet",
    "parse_sheets_url",
]
