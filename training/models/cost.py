"""Model size and compute per tile, counted on the meta device (no memory, no real compute).

`python -m bonemarrow.training.models.cost [--tile 512]` prints parameters and
GFLOPs (FlopCounterMode's count: 2 per multiply-add) per preset and member.
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from bonemarrow.training.models.presets import PRESETS, build_model
from bonemarrow.training.models.registry import DEFAULT_TILE


def flops(module: torch.nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of `module` on `example` (both may live on the meta device)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(example)
    return counter.get_total_flops()


def preset_cost(preset: str, tile: int = DEFAULT_TILE, **overrides) -> dict[str, dict[str, float]]:
    """{"total"|member: {"params_m": ..., "gflops": ...}} for one tile of tile x tile pixels."""
    with torch.device("meta"):
        model = build_model(preset, **overrides).eval()
        image = torch.zeros(1, 3, tile, tile, dtype=torch.uint8)
        out = {"total": {"params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                         "gflops": flops(model, image) / 1e9}}
        normalised = torch.zeros(1, 3, tile, tile)
        for name, member in model.members.items():
            out[name] = {"params_m": sum(p.numel() for p in member.parameters()) / 1e6,
                         "gflops": flops(member, normalised) / 1e9}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    args = parser.parse_args()
    for preset in PRESETS:
        for who, cost in preset_cost(preset, args.tile).items():
            print(f"{preset:8s} {who:10s} {cost['params_m']:7.2f} M params {cost['gflops']:8.1f} GFLOPs/{args.tile}px tile")


if __name__ == "__main__":
    main()
