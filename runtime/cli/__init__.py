"""Command-line entry points of the runtime, over one shared helper (common.py)."""
