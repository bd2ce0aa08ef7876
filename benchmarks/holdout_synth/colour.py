"""From stain amounts to light: the slide's own H&E hues and strengths, through Beer-Lambert.

Each absorber has an optical-density vector (how strongly it absorbs red,
green and blue light). Haematoxylin ranges from blue to purple, eosin from
magenta-pink to orange-red, and red cells absorb green and blue (bright red).
The densities add and transmission is 10^-OD, which is why a faded slide
loses saturation rather than just brightness, and why overlapping stains mix
the way they do under a microscope. Uneven staining (section-thickness
stripes from a chattering knife, a darker periphery, a gradient across the
slide) scales the amounts before they become light.
"""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import distance_inside
from .params import SlideParams

_H_BLUE = np.array([0.74, 0.62, 0.27])
_H_PURPLE = np.array([0.56, 0.79, 0.30])
_E_MAGENTA = np.array([0.07, 0.96, 0.27])
_E_ORANGE = np.array([0.03, 0.80, 0.56])
_BLOOD = np.array([0.04, 0.84, 0.55])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def stain_matrix(p: SlideParams) -> np.ndarray:
    """(3 absorbers, 3 colour channels) optical density per unit amount for this slide."""
    h = _unit((1 - p.h_hue) * _H_BLUE + p.h_hue * _H_PURPLE) * p.h_strength
    e = _unit((1 - p.e_hue) * _E_MAGENTA + p.e_hue * _E_ORANGE) * 0.62 * p.e_strength
    b = _unit(_BLOOD + np.array([0.0, 0.0, 0.15]) * (0.5 - p.e_hue)) * np.sqrt(p.e_strength)
    return np.stack([h, e, b]).astype(np.float32)


def uneven_staining(rng: np.random.Generator, stain: np.ndarray, tissue: np.ndarray, p: SlideParams) -> np.ndarray:
    """Scale stain amounts by section thickness: periphery, knife chatter, a slow gradient."""
    h, w = tissue.shape
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.cos(angle) * xx + np.sin(angle) * yy) / max(w, h)
    factor = 1.0 + rng.uniform(0.0, 0.18) * (along - along.mean())
    rim = distance_inside(tissue)
    factor = factor * (1.0 + rng.uniform(0.0, 0.25) * np.exp(-rim / (12.0 * p.scale)))
    if p.chatter > 0:
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(25, 90) * p.scale
        phase = (np.cos(theta) * xx + np.sin(theta) * yy) * (2 * np.pi / period)
        factor = factor * (1.0 + p.chatter * np.sin(phase + 0.6 * np.sin(phase * 0.37)))
    return stain * factor[..., None].astype(np.float32)


def transmission(stain: np.ndarray, p: SlideParams) -> np.ndarray:
    """(H, W, 3) float32 fraction of light passed per RGB channel."""
    # cv2.transform rather than a BLAS matmul: one pass, no threading, same speed on every input.
    od = cv2.transform(np.ascontiguousarray(stain, np.float32), (stain_matrix(p) * -np.float32(np.log(10.0))).T)
    return np.exp(od, out=od)


def glass_colour(p: SlideParams) -> np.ndarray:
    """RGB of empty glass (0..1): white to grey, cold (bluish) to warm (slightly yellow)."""
    warm = np.array([1.0, 0.975, 0.87])
    cold = np.array([0.93, 0.97, 1.0])
    t = (p.warmth + 1) / 2
    return (p.glass_level * ((1 - t) * cold + t * warm)).astype(np.float32)
