"""``TokenizerConfig``: the GRQ-VAE motion tokenizer's architecture, as a self-validating dataclass.

Presets (``TokenizerConfig.preset(name)``, names in ``PRESETS``):

=================  ===========================================================================
paper              Being-H0 default: part-level (wrist + finger tokenizers), each 2 groups x 8
                   layers x 512 codes, latent width 512, conv width 512, 3 residual blocks with
                   dilations 9/3/1, 4x temporal downsampling. 128 tokens per hand-second.
whole-4groups      Ablation (paper Table 5, "4-Groups"): one whole-hand tokenizer, 4 groups x
                   8 layers, plus the wrist-slice loss. 128 tokens per hand-second.
whole-16layers     Ablation ("16-Layers"): one whole-hand tokenizer, 2 groups x 16 layers,
                   plus the wrist-slice loss. 128 tokens per hand-second.
small              CPU quickstart: the paper's layout (2 parts x 2 groups x 4 steps x 8 layers =
                   128 tokens) with conv width 96, latent 64 and 128 codes per layer.
tiny               Unit tests: 2 parts x 2 groups x 2 layers x 16 codes, width 32.
=================  ===========================================================================
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..core.errors import UserValueError
from ..motion.features import FEATURE_NAMES

__all__ = ["TokenizerConfig", "PRESETS", "CONFIG_VERSION", "MAX_SIZES"]

CONFIG_VERSION = 1
#: Upper bounds of the size fields (far above any published motion tokenizer: the paper's has width
#: 512, 3 blocks, 512 codes): a config beyond them is a corrupt file or a typo, refused before a
#: model is built.
MAX_SIZES = {"width": 4096, "code_dim": 4096, "groups": 64, "layers": 64, "codes": 65536, "down_t": 4,
             "kmeans_iters": 1000, "restart_after": 10_000_000, "blocks": 16, "dilation": 1024}


@dataclass(frozen=True)
class TokenizerConfig:
    """Architecture and quantizer settings of a motion tokenizer (saved with every checkpoint)."""

    name: str = "paper"
    """Free-form label (the preset it came from)."""
    features: str = "D162"
    """Per-frame motion feature (``beingh0.motion.FeatureSpec``): D51, D99, D109, D114 or D162."""
    part_level: bool = True
    """True: separate wrist (R, t) and finger (theta, joints) tokenizers (Being-H0's default).
    False: one whole-hand tokenizer with the extra wrist-slice loss (paper eq. 5-6)."""
    width: int = 512
    """Channels of the 1-D conv encoder/decoder."""
    dilations: tuple = (9, 3, 1)
    """Dilations of the residual blocks after each down-sampling conv (one block per entry)."""
    down_t: int = 2
    """Number of stride-2 convs: temporal downsampling 2**down_t (4: 16 frames -> 4 latent steps)."""
    code_dim: int = 512
    """Latent channels per part (encoder output); split into ``groups`` equal slices of
    ``code_dim // groups`` channels, the dimension of each code vector (the official release's
    ``output_emb_width`` 512 split into 2 groups of 256)."""
    groups: int = 2
    """Channel groups, each quantized by its own residual VQ (GRQ)."""
    layers: int = 8
    """Residual VQ layers per group."""
    codes: int = 512
    """Codes per codebook; one codebook per (part, group, layer)."""
    ema_decay: float = 0.99
    """EMA decay of the codebook statistics. The official release uses 0.8, which lets a code follow
    the last few batches only; with k-means init and dead-code restart 0.99 is stable."""
    commit_weight: float = 0.02
    """Weight of the commitment loss ||z - sg(q)||^2 (paper: 0.02)."""
    wrist_weight: float = 1.0
    """Weight of the wrist-slice reconstruction term; used only when ``part_level`` is False
    (the paper drops it for the part-level tokenizer)."""
    kmeans_init: bool = True
    """Initialise every codebook by k-means on the first training batch's residuals (layer by layer)."""
    kmeans_iters: int = 10
    """Lloyd iterations of that initialisation."""
    restart_after: int = 50
    """Dead-code restart: a code unused for this many training steps is replaced by a random
    residual of the current batch (0 = never; the official release never restarts)."""
    version: int = CONFIG_VERSION
    """Format version of this config (checked on load)."""

    def __post_init__(self):
        if isinstance(self.dilations, (list, tuple)):
            object.__setattr__(self, "dilations", tuple(self.dilations))
        problems = []

        def need(ok, msg):
            if not ok:
                problems.append(msg)

        def short(v):
            t = repr(v)
            return t if len(t) <= 60 else f"{t[:40]}... ({len(v) if hasattr(v, '__len__') else '?'} items)"

        def isint(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def isnum(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        def posint(name, lo=1):
            v = getattr(self, name)
            hi = MAX_SIZES.get(name)
            need(isint(v) and v >= lo and (hi is None or v <= hi),
                 f"{name}={short(v)} must be an integer in [{lo}, {hi if hi is not None else 'inf'}]")

        need(isinstance(self.name, str) and len(self.name) <= 200, f"name={short(self.name)} must be a string (<= 200 chars)")
        need(isinstance(self.features, str) and self.features in FEATURE_NAMES,
             f"features={short(self.features)} must be one of {list(FEATURE_NAMES)}")
        need(isinstance(self.part_level, bool), f"part_level={self.part_level!r} must be True or False")
        need(isinstance(self.kmeans_init, bool), f"kmeans_init={self.kmeans_init!r} must be True or False")
        for n in ("width", "code_dim", "groups", "layers", "codes", "down_t"):
            posint(n)
        posint("kmeans_iters", 0)
        posint("restart_after", 0)
        dil = self.dilations
        need(isinstance(dil, tuple) and 1 <= len(dil) <= MAX_SIZES["blocks"] and
             all(isint(d) and 1 <= d <= MAX_SIZES["dilation"] for d in dil),
             f"dilations={short(dil)} must be a list of 1 to {MAX_SIZES['blocks']} integers in [1, {MAX_SIZES['dilation']}], "
             "e.g. (9, 3, 1)")
        if isint(self.code_dim) and isint(self.groups) and self.groups >= 1:
            need(self.code_dim % self.groups == 0,
                 f"code_dim={self.code_dim} must be divisible by groups={self.groups} (each group gets code_dim // groups channels)")
        need(isnum(self.ema_decay) and 0.0 <= self.ema_decay < 1.0,
             f"ema_decay={self.ema_decay!r} must be in [0, 1), e.g. 0.99")
        for n in ("commit_weight", "wrist_weight"):
            v = getattr(self, n)
            need(isnum(v) and math.isfinite(v) and v >= 0, f"{n}={v!r} must be a finite number >= 0")
        need(self.version == CONFIG_VERSION,
             f"config version {self.version!r} is not supported by this beingh0 (knows {CONFIG_VERSION})")
        if problems:
            raise UserValueError("invalid TokenizerConfig: " + "; ".join(problems))

    # -- derived -----------------------------------------------------------------------------
    @property
    def downsample(self) -> int:
        return 2 ** self.down_t

    @property
    def group_dim(self) -> int:
        return self.code_dim // self.groups

    @property
    def parts(self) -> tuple[str, ...]:
        return ("wrist", "finger") if self.part_level else ("hand",)

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerConfig":
        """Inverse of ``to_dict``; unknown keys are an error."""
        if not isinstance(d, dict):
            raise UserValueError(f"tokenizer config must be a dict, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserValueError(f"tokenizer config has unknown keys {sorted(unknown)}; known: {sorted(known)}. "
                             "Was it written by a newer beingh0?")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides) -> "TokenizerConfig":
        """A named configuration (see the module docstring), with optional field overrides."""
        if name not in PRESETS:
            raise UserValueError(f"unknown tokenizer preset {name!r}; choose one of {list(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, TokenizerConfig] = {
    "paper": TokenizerConfig(),
    "whole-4groups": TokenizerConfig(name="whole-4groups", part_level=False, groups=4, layers=8),
    "whole-16layers": TokenizerConfig(name="whole-16layers", part_level=False, groups=2, layers=16),
    # EMA 0.95 and an earlier restart: the quickstart runs a few hundred steps, not 100k.
    "small": TokenizerConfig(name="small", width=96, code_dim=64, codes=128, ema_decay=0.95, restart_after=20),
    "tiny": TokenizerConfig(name="tiny", width=32, dilations=(3, 1), code_dim=16, layers=2, codes=16,
                            ema_decay=0.9, kmeans_iters=4, restart_after=5),
}
