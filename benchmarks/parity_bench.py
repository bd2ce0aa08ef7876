"""Section 3, parity on whole images: each ONNX precision against PyTorch, through the same tiler.

PyTorch and onnxruntime run with bm-run's default tiling (the model's tile,
25 % overlap, Gaussian blending, background skipping), so any difference comes
from the graph and its precision alone. One run each: the computation is
deterministic, so there is no spread to report.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bonemarrow.benchmarks.models import ModelSet, torch_predict


def _density(labels: np.ndarray) -> float | None:
    from bonemarrow.runtime.metrics import class_counts, tissue_fractions

    value = tissue_fractions(class_counts(labels))["bone_density"]
    return None if value != value else float(value)


def compare_labels(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Label agreement (all pixels and reference tissue pixels) and bone density difference."""
    if reference.shape != candidate.shape:
        raise ValueError(f"label maps differ in shape: {reference.shape} vs {candidate.shape}")
    same = reference == candidate
    tissue = reference != 0
    ref_d, cand_d = _density(reference), _density(candidate)
    return {"label_agreement": float(same.mean()),
            "tissue_label_agreement": float(same[tissue].mean()) if tissue.any() else None,
            "density_reference": ref_d, "density_candidate": cand_d,
            "density_difference": None if ref_d is None or cand_d is None else abs(cand_d - ref_d)}


def bench_parity(models: ModelSet, rgb: np.ndarray, *, threads: int,
                 progress: Callable[[str], None] | None = None) -> dict:
    """PyTorch labels through the tiler, then every ONNX precision compared with them."""
    import torch

    from bonemarrow.runtime.model import open_model
    from bonemarrow.runtime.segmenter import Segmenter
    from bonemarrow.runtime.tiling import TilingConfig, sliding_window_inference

    torch.set_num_threads(threads)
    rows = {}
    first = None
    for precision, path in models.onnx.items():
        model = open_model(path, "cpu", threads)
        config = TilingConfig().resolved(model.info)  # bm-run's defaults
        segmenter = Segmenter(model, config)
        if first is None:  # PyTorch with exactly the runtime's tiling settings
            if progress:
                progress("parity: PyTorch through the tiler")
            first = sliding_window_inference(
                rgb, torch_predict(models.torch_model), tile=config.tile, overlap=config.overlap,
                batch_size=config.batch_size, divisor=model.info.divisor, blend=config.blend,
                skip_background=config.skip_background).labels
            settings = {"tile": config.tile, "overlap": config.overlap, "batch": config.batch_size,
                        "blend": config.blend, "skip_background": config.skip_background}
        if progress:
            progress(f"parity: onnxruntime {precision}")
        result = segmenter.segment(rgb)
        rows[precision] = {**compare_labels(first, result.labels), "provider": model.provider}
    for precision, reason in models.missing.items():
        rows[precision] = {"status": "not run", "reason": reason}
    return {"preset": models.preset, "image": {"width": int(rgb.shape[1]), "height": int(rgb.shape[0])},
            "settings": settings if first is not None else None, "rows": rows}
