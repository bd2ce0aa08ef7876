"""A plain-text table of tissue fractions per image, printed at the end of bm-run.

People running the tool want the numbers at a glance; the CSV and JSON hold the
same figures for programs.
"""
from __future__ import annotations

import math


def _percent(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def fractions_table(records: list[dict]) -> str:
    """Rows of name, size, bone density, fat and other fractions of tissue, and seconds."""
    header = ("image", "size", "bone density", "fat", "other", "seconds")
    rows = [
        (
            str(r["name"]),
            f"{r['width']}x{r['height']}",
            _percent(r.get("bone_density")),
            _percent(r.get("fat_fraction")),
            _percent(r.get("other_fraction")),
            f"{r['seconds']:.1f}",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])
