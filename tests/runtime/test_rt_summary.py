from __future__ import annotations

import math

from bonemarrow.runtime.batch.summary import fractions_table


def _record(name, density, seconds=1.25):
    return {"name": name, "width": 30, "height": 20, "bone_density": density, "fat_fraction": 0.5,
            "other_fraction": None if density is None else 0.5 - density, "seconds": seconds}


def test_table_has_one_row_per_image_with_percentages():
    table = fractions_table([_record("a", 0.123), _record("longer_name", None)]).splitlines()
    assert len(table) == 4
    assert table[0].split()[0] == "image" and "bone density" in table[0]
    assert table[2].split() == ["a", "30x20", "12.3%", "50.0%", "37.7%", "1.2"]
    assert table[3].split()[:3] == ["longer_name", "30x20", "-"]


def test_nan_density_is_shown_as_a_dash():
    row = fractions_table([_record("x", math.nan)]).splitlines()[2]
    assert row.split()[2] == "-"
