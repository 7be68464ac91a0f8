"""Core cache commands: demo, stats, ls, show, export, import, prune, clear."""
