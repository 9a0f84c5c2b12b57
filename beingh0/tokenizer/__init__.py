"""Part-level GRQ-VAE motion tokenizer: MANO motion <-> 128 token ids per hand-second (issue 4).

See docs/tokenizer.md. Layers below: ``beingh0.data`` (dataset folders, the loader), ``beingh0.motion``
(the one feature path, windows), ``beingh0.mano`` (hand model for evaluation), ``beingh0.ops`` (kernels).
"""
from .config import PRESETS, TokenizerConfig
from .data import MotionClip, ShardDatasets, clip_features, clip_track, clip_windows, open_datasets
from .io import load_tokenizer, save_tokenizer
from .layout import TokenLayout
from .model import MotionTokenizer
from .quantizer import GroupedResidualVQ, code_stats, lookup_codes, quantize_indices

__all__ = ["PRESETS", "TokenizerConfig", "MotionClip", "ShardDatasets", "clip_features", "clip_track", "clip_windows",
           "open_datasets", "load_tokenizer", "save_tokenizer", "TokenLayout", "MotionTokenizer", "GroupedResidualVQ",
           "code_stats", "lookup_codes", "quantize_indices"]
