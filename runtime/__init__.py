"""bonemarrow.runtime: torch-free tiled inference for bone marrow biopsy segmentation."""
from bonemarrow.runtime.labels import CLASSES, COLORS

__all__ = ["CLASSES", "COLORS"]
