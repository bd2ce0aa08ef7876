"""What varies between synthetic biopsies, and by how much: named profiles of parameter ranges.

A model trained on one generator learns that generator's shortcuts (pink means
bone, big white blobs are glass). So every property in which real slides vary
is a parameter with a range, drawn once per image into a `Style`:

* `PROFILES["train"]` is what training data is drawn from: wide, overlapping
  ranges (bone and marrow hues overlap, fat cells as large as lumens);
* `PROFILES["shifted"]` draws stain, scale and fat from ranges *outside* the
  training ranges, for a hold-out that no model choice is ever made on.

A range is a `Span`: one interval, or several (the shifted profile uses both
tails beyond a training range). Lengths are in pixels at the generator's
nominal scale (about 2 micrometres per pixel) and are multiplied by the image's
`scale`; stain amounts are optical-density concentrations (see painting.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

import numpy as np

#: The pixel size the generator's nominal lengths correspond to (micrometres per pixel).
NOMINAL_MPP = 2.0


@dataclass(frozen=True)
class Span:
    """A union of closed intervals to draw from uniformly (by length)."""

    intervals: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.intervals or any(low > high for low, high in self.intervals):
            raise ValueError(f"a span needs intervals with low <= high, got {self.intervals}")

    def draw(self, rng: np.random.Generator) -> float:
        widths = np.array([high - low for low, high in self.intervals], dtype=np.float64)
        if widths.sum() <= 0:
            low, _ = self.intervals[int(rng.integers(len(self.intervals)))]
            return float(low)
        index = int(rng.choice(len(widths), p=widths / widths.sum()))
        low, high = self.intervals[index]
        return float(rng.uniform(low, high))

    def contains(self, value: float, tolerance: float = 1e-9) -> bool:
        return any(low - tolerance <= value <= high + tolerance for low, high in self.intervals)

    @property
    def low(self) -> float:
        return min(low for low, _ in self.intervals)

    @property
    def high(self) -> float:
        return max(high for _, high in self.intervals)


def span(*bounds: float) -> Span:
    """span(a, b) is [a, b]; span(a, b, c, d) is [a, b] U [c, d]."""
    if len(bounds) % 2:
        raise ValueError("span() takes pairs of bounds")
    return Span(tuple((float(bounds[i]), float(bounds[i + 1])) for i in range(0, len(bounds), 2)))


def chance(p: float) -> Span:
    """A probability, stored as a degenerate span so profiles can change it like any range."""
    return span(p, p)


@dataclass(frozen=True)
class SynthRanges:
    """Every per-image parameter's range. The defaults are the training profile."""

    scale: Span = span(0.55, 1.8)               # pixel scale: every length is multiplied by it (0.5 = 2x coarser)
    # -- bone
    bone_density: Span = span(0.02, 0.45)      # target share of the core; 0 with p_no_bone
    p_no_bone: Span = chance(0.08)              # a section without trabeculae
    trabecula_thickness: Span = span(40, 115)   # px
    p_cortex: Span = chance(0.3)                # a cortical plate along one side of the core
    p_end_cortex: Span = chance(0.25)           # cortical pieces at the core's ends
    erosion: Span = span(0.0, 7.0)              # px amplitude of scalloped (eroded) bone edges
    p_crushed: Span = chance(0.15)              # cracked, fragmented trabeculae
    bone_eosin: Span = span(0.28, 1.25)         # pale pink .. deep magenta
    bone_haematoxylin: Span = span(0.0, 0.35)   # a purple cast (decalcified bone takes haematoxylin)
    lamellae: Span = span(0.0, 0.14)            # amplitude of lamellar banding
    cement_lines: Span = span(0.0, 1.0)         # how many cement lines (0 none .. 1 many)
    lacunae: Span = span(150, 1100)             # osteocyte lacunae per megapixel of bone
    retraction: Span = span(0.0, 0.6)           # share of the bone edge with a retraction cleft (fat)
    # -- fat
    fat_bias: Span = span(-2.6, 2.6)            # marrow cellularity: -2.6 ~ all cells .. 2.6 ~ all fat
    adipocyte_diameter: Span = span(18, 58)     # px, before scale; cells vary +-35 % around it
    membrane_width: Span = span(1.0, 3.0)       # px
    membrane_eosin: Span = span(0.05, 0.5)      # barely visible .. thick pink
    collapsed: Span = span(0.0, 0.3)            # share of adipocytes partly collapsed (wrinkled)
    # -- background inside tissue
    lumens: Span = span(0.3, 3.0)               # vessel and sinusoid lumens per megapixel of core
    lumen_radius: Span = span(12, 150)          # px: from smaller than a large adipocyte upwards
    p_lumen_wall: Span = chance(0.7)            # lumens with a visible wall (other); else 30 % of them
    p_lumen_blood: Span = chance(0.4)           # lumens that may hold pooled blood (other)
    tears: Span = span(0.0, 1.3)                # cracks through the section (background), relative rate
    holes: Span = span(0.0, 2.0)                # small holes (background), relative rate
    # -- marrow
    nucleus_size: Span = span(0.8, 1.5)         # blob sigma, px
    nuclear_density: Span = span(0.3, 0.95)     # higher = fewer nuclei
    marrow_haematoxylin: Span = span(0.08, 0.24)  # cytoplasm haematoxylin (bluer marrow)
    marrow_eosin: Span = span(0.12, 0.55)       # purple-blue .. magenta-pink marrow
    red_cells: Span = span(1.6, 2.7)            # higher = fewer red cells
    megakaryocytes: Span = span(0.0, 14.0)      # per megapixel
    haemorrhage: Span = span(0.0, 0.35)         # share of marrow flooded with red cells
    fibrosis: Span = span(0.0, 0.25)            # share of marrow in fibrotic streaks
    # -- stain and light
    haematoxylin_strength: Span = span(0.55, 1.6)  # faded .. over-stained nuclei
    eosin_strength: Span = span(0.55, 1.6)      # faded .. over-stained cytoplasm and bone
    stain_drift: Span = span(0.0, 0.35)         # slow variation of both within the slide
    haematoxylin_hue: Span = span(-1.0, 1.0)    # -1 blue .. +1 purple
    eosin_hue: Span = span(-1.0, 1.0)           # -1 magenta .. +1 orange-red
    white_balance: Span = span(-1.0, 1.0)       # -1 cold (blue) .. +1 warm (yellow)
    lamp: Span = span(228, 254)                 # brightness of the light source (grey levels)
    glass_density: Span = span(0.0, 0.09)       # white .. grey glass
    glass_yellow: Span = span(0.0, 0.07)        # a yellow cast of old mounting medium
    # -- optics and artefacts
    blur: Span = span(0.3, 1.5)                 # focus blur everywhere (sigma, px)
    soft_focus: Span = span(0.2, 2.6)           # extra blur over slowly varying regions
    noise: Span = span(0.003, 0.02)             # sensor noise (optical density)
    p_fold: Span = chance(0.15)                 # a tissue fold: a band of doubled stain
    p_jpeg: Span = chance(0.3)                  # saved as JPEG
    jpeg_quality: Span = span(35, 92)           # JPEG quality when saved as JPEG
    p_stitching: Span = chance(0.2)             # scanner tiles with slightly different gains
    p_dust: Span = chance(0.5)                  # dust specks and fibres on the glass
    p_pen: Span = chance(0.1)                   # a marker stroke or dot beside the core
    p_bubble: Span = chance(0.1)                # an air bubble under the coverslip
    p_low_resolution: Span = chance(0.15)       # the look of a scan saved small and enlarged
    low_resolution: Span = span(1.5, 3.5)       # downsampling factor of the low-resolution look

    def replace(self, **changes: Span) -> "SynthRanges":
        return dataclasses.replace(self, **changes)


TRAIN = SynthRanges()

#: Outside the training ranges in stain, scale and fat, for a shifted hold-out:
#: stain strengths and hues past both ends, scales past both ends, adipocytes
#: larger than any trained at that scale, glass tinted further. Everything else
#: stays within training ranges, so each image is odd in a few ways, not all.
SHIFTED = TRAIN.replace(
    scale=span(0.45, 0.55, 1.8, 2.1),
    haematoxylin_strength=span(0.4, 0.55, 1.6, 1.85),
    eosin_strength=span(0.4, 0.55, 1.6, 1.85),
    haematoxylin_hue=span(-1.35, -1.0, 1.0, 1.35),
    eosin_hue=span(-1.35, -1.0, 1.0, 1.35),
    white_balance=span(-1.4, -1.0, 1.0, 1.4),
    adipocyte_diameter=span(58, 72),
    marrow_eosin=span(0.45, 0.65),
    bone_eosin=span(0.22, 0.28, 1.25, 1.4),
    glass_density=span(0.09, 0.12),
)

PROFILES: dict[str, SynthRanges] = {"train": TRAIN, "shifted": SHIFTED}


@dataclass(frozen=True)
class Style:
    """The values drawn for one image (one per SynthRanges field), plus derived switches."""

    values: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> float:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def flag(self, name: str) -> bool:
        """A drawn yes/no (fields named p_*), e.g. style.flag('fold')."""
        return bool(self.values[f"has_{name}"])

    def length(self, pixels: float) -> float:
        """A nominal length in pixels at this image's scale."""
        return float(pixels) * self.values["scale"]

    def as_params(self) -> dict[str, float | bool]:
        return {key: (bool(v) if key.startswith("has_") else round(float(v), 5)) for key, v in self.values.items()}


def draw_style(rng: np.random.Generator, ranges: SynthRanges = TRAIN) -> Style:
    """One image's parameters: each field drawn from its span; p_* fields become has_* flags."""
    values: dict[str, float] = {}
    for item in fields(ranges):
        value = getattr(ranges, item.name).draw(rng)
        if item.name.startswith("p_"):
            values[f"has_{item.name[2:]}"] = float(rng.random() < value)
        else:
            values[item.name] = value
    if values["has_no_bone"]:
        values["bone_density"] = 0.0
    return Style(values)


def profile(name: str) -> SynthRanges:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown generator profile {name!r}; choose from {sorted(PROFILES)}") from None


def stain_vectors(style: Style) -> tuple[np.ndarray, np.ndarray]:
    """Unit optical-density vectors (R, G, B) of haematoxylin and eosin for the drawn hues.

    Haematoxylin runs from blue (absorbs red strongly) to purple (absorbs less
    red, more blue); eosin from magenta (absorbs green alone) to orange-red
    (absorbs blue as well).
    """
    h = float(style.haematoxylin_hue)
    e = float(style.eosin_hue)
    haematoxylin = np.array([0.66 - 0.12 * h, 0.70 + 0.03 * h, 0.27 + 0.12 * h])
    eosin = np.array([0.06 + 0.03 * max(e, 0), 0.92 - 0.05 * e, 0.30 + 0.25 * e])
    haematoxylin = np.clip(haematoxylin, 0.02, None)
    eosin = np.clip(eosin, 0.02, None)
    return haematoxylin / np.linalg.norm(haematoxylin), eosin / np.linalg.norm(eosin)


def lamp_rgb(style: Style) -> np.ndarray:
    """The light source (R, G, B) for the drawn brightness and white balance."""
    warm = float(style.white_balance)
    tint = np.array([1 + 0.035 * warm, 1.0, 1 - 0.05 * warm])
    return float(style.lamp) * tint / max(1.0, float(tint.max() * style.lamp) / 255.0)


def _interval_text(value: Span, name: str) -> str:
    if name.startswith("p_"):
        return f"{value.low:g}"
    return " or ".join(f"{low:g} to {high:g}" for low, high in value.intervals)


def ranges_table() -> str:
    """The Markdown table of every parameter's training and shifted ranges (docs/synthetic.md quotes it)."""
    comments = _field_comments()
    rows = ["| parameter | training | shifted hold-out | meaning |", "|---|---|---|---|"]
    for item in fields(TRAIN):
        train, shifted = getattr(TRAIN, item.name), getattr(SHIFTED, item.name)
        shifted_text = _interval_text(shifted, item.name) if shifted != train else "same"
        name = f"{item.name} (probability)" if item.name.startswith("p_") else item.name
        rows.append(f"| {name} | {_interval_text(train, item.name)} | {shifted_text} | {comments.get(item.name, '')} |")
    return "\n".join(rows)


def _field_comments() -> dict[str, str]:
    """The trailing comments of SynthRanges' fields, read from this file (one source for code and docs)."""
    import inspect
    import re

    comments = {}
    for line in inspect.getsource(SynthRanges).splitlines():
        match = re.match(r"\s+(\w+): Span = .*#\s*(.+)$", line)
        if match:
            comments[match.group(1)] = match.group(2).strip()
    return comments


if __name__ == "__main__":
    print(ranges_table())
