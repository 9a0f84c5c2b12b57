"""The synthetic UniHand source: procedural bimanual manipulation, rendered on the CPU.

``generate.synth_episode(seed, index, SynthConfig(...))`` makes one episode; the modules are
``scene`` (objects, cameras, backgrounds), ``motion`` (phases, synergies, contact-driven closure),
``raster`` (headless z-buffered rasteriser), ``language`` (instructions and captions).
"""
from .generate import SCENARIOS, SynthConfig, synth_episode

__all__ = ["SCENARIOS", "SynthConfig", "synth_episode"]
