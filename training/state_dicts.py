"""Comparing state dicts, so every loader refuses a mismatch with the same one-line wording."""
from __future__ import annotations

import torch


def describe_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """A short phrase saying how `found` differs from `expected` ('' when they match)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k].shape) != tuple(found[k].shape))
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[0]})")
    if wrong:
        key = wrong[0]
        parts.append(
            f"{len(wrong)} shape mismatch(es) (e.g. {key}: file {tuple(found[key].shape)}, "
            f"model {tuple(expected[key].shape)})"
        )
    return ", ".join(parts)
