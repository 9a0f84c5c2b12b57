"""Part-level GRQ-VAE motion tokenizer: MANO motion <-> 128 token ids per hand-second (issue 4).

See docs/tokenizer.md. Layers below: ``beingh0.motion`` (features, windows), ``beingh0.mano``
(hand model for joints and evaluation), ``beingh0.ops`` (kernels).
"""
from .config import PRESETS, TokenizerConfig
from .data import MotionClip, WindowSampler, canonicalize_features, clip_windows, prepare_clip
from .io import load_tokenizer, save_tokenizer
from .layout import TokenLayout
from .model import MotionTokenizer
from .quantizer import GroupedResidualVQ, code_stats, lookup_codes, quantize_indices

__all__ = ["PRESETS", "TokenizerConfig", "MotionClip", "WindowSampler", "canonicalize_features", "clip_windows",
           "prepare_clip", "load_tokenizer", "save_tokenizer", "TokenLayout", "MotionTokenizer", "GroupedResidualVQ",
           "code_stats", "lookup_codes", "quantize_indices"]
