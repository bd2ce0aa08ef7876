"""Procedural H&E bone marrow biopsies with exact ground truth (see docs/synthetic.md)."""
from bonemarrow.training.synth.generator import generate_biopsy, image_rng

__all__ = ["generate_biopsy", "image_rng"]
