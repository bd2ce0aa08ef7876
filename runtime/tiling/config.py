"""How to tile: one frozen settings object, separate from the model it is used with.

Settings flow one way: command-line options (or a page's controls) -> a
TilingConfig -> the code that tiles. `tile=None` means "the model's recommended
tile"; `resolved(model.info)` returns a new config with that filled in, so a
config that reaches the tiler always says exactly what it does.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bonemarrow.runtime.contract import ModelInfo

PAD_MODES = ("constant", "reflect")
BLEND_MODES = ("gaussian", "constant")
#: Slides are white where there is no tissue, so white is the neutral padding.
DEFAULT_PAD_VALUE = 255


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TilingConfig:
    """Tile size and overlap, model calls per batch, blending, padding and background skipping.

    tile: tile side in pixels (rounded up to the model's divisor, shrunk for short images);
      None until resolved against a model.
    overlap: fraction of a tile shared with its neighbour, in [0, 1).
    batch_size: tiles per model call.
    blend: "gaussian" (trust tile centres more) or "constant" (flat average).
    pad_mode: images smaller than a tile are padded with `pad_value` ("constant", white by
      default: the slide's colour) or by reflection ("reflect"), and cropped back.
    skip_background: skip tiles the tissue detector finds no tissue in (they become background).
    fixed_batch: pad a run's last, short batch up to batch_size (with pad_value pixels, whose
      outputs are dropped), so every model call of an image has one shape. For CUDA: cuDNN picks
      its convolution algorithms once per shape, and a CUDA graph replays one shape only. Labels
      are unchanged (each tile's output depends on that tile alone).
    """

    tile: int | None = None
    overlap: float = 0.25
    batch_size: int = 4
    blend: str = "gaussian"
    pad_mode: str = "constant"
    pad_value: int = DEFAULT_PAD_VALUE
    skip_background: bool = True
    fixed_batch: bool = False

    def __post_init__(self) -> None:
        if self.tile is not None and not (_is_int(self.tile) and self.tile >= 1):
            raise ValueError(f"tile must be positive, got {self.tile}")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, float)) \
                or not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if not (_is_int(self.batch_size) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.blend not in BLEND_MODES:
            raise ValueError(f"blend must be one of {BLEND_MODES}, got {self.blend!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if not (_is_int(self.pad_value) and 0 <= self.pad_value <= 255):
            raise ValueError(f"pad_value must be an integer in 0..255, got {self.pad_value!r}")
        if not isinstance(self.skip_background, bool):
            raise ValueError(f"skip_background must be True or False, got {self.skip_background!r}")
        if not isinstance(self.fixed_batch, bool):
            raise ValueError(f"fixed_batch must be True or False, got {self.fixed_batch!r}")

    def resolved(self, info: ModelInfo) -> TilingConfig:
        """This config with the model's recommended tile where none was given (a new object)."""
        return self if self.tile is not None else replace(self, tile=info.tile)
