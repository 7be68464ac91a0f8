"""``sheetcache emulator``: serve the bundled Google Sheets API emulator."""
