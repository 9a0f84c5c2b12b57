"""The synthetic UniHand source, and THE synthetic hand-motion generator of beingh0.

``generate.synth_episode(seed, index, SynthConfig(...))`` makes one episode (procedural bimanual
manipulation rendered on the CPU); ``motion.grasp_motion(frames, seed, side=...)`` gives one hand's
grasp/manipulation motion as MANO parameters (the ``mano demo`` job and tests use it). Modules:
``scene`` (objects, cameras, backgrounds), ``motion`` (phases, synergies, contact-driven closure,
the hand tables), ``raster`` (headless z-buffered rasteriser), ``language`` (instructions and
captions), ``mano_demo`` (the ``beingh0 mano demo`` job).
"""
from .generate import SynthConfig, synth_episode
from .motion import SCENARIOS, HandMotion, grasp_motion
from .dataset import synth_dataset, synth_options

__all__ = ["SCENARIOS", "SynthConfig", "synth_episode", "HandMotion", "grasp_motion", "synth_dataset", "synth_options"]
