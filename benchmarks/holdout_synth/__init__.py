"""An independent synthetic hold-out generator for bone marrow biopsies: a TEST set only.

Written without reference to the training generator (training/synth) so that a
model trained there cannot score well here by learning that generator's
shortcuts. Never train or select models on these images. See
docs/holdout_synth.md.
"""
from .generator import GENERATOR, VERSION, Scene, generate, generate_scene

__all__ = ["GENERATOR", "VERSION", "Scene", "generate", "generate_scene"]
