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

from dataclasses import asdict, dataclass, field, fields, replace

from ..core.config import validate_config
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

    name: str = field(default="paper", metadata={"cli": False})
    """Free-form label (the preset it came from)."""
    features: str = field(default="D162", metadata={"choices": FEATURE_NAMES})
    """Per-frame motion feature (``beingh0.motion.FeatureSpec``): D51, D99, D109, D114 or D162."""
    part_level: bool = True
    """True: separate wrist (R, t) and finger (theta, joints) tokenizers (Being-H0's default).
    False: one whole-hand tokenizer with the extra wrist-slice loss (paper eq. 5-6)."""
    width: int = field(default=512, metadata={"ge": 1, "le": MAX_SIZES["width"]})
    """Channels of the 1-D conv encoder/decoder."""
    dilations: tuple = field(default=(9, 3, 1), metadata={"ge": 1, "le": MAX_SIZES["dilation"]})
    """Dilations of the residual blocks after each down-sampling conv (one block per entry)."""
    down_t: int = field(default=2, metadata={"ge": 1, "le": MAX_SIZES["down_t"]})
    """Number of stride-2 convs: temporal downsampling 2**down_t (4: 16 frames -> 4 latent steps)."""
    code_dim: int = field(default=512, metadata={"ge": 1, "le": MAX_SIZES["code_dim"]})
    """Latent channels per part (encoder output); split into ``groups`` equal slices of
    ``code_dim // groups`` channels, the dimension of each code vector (the official release's
    ``output_emb_width`` 512 split into 2 groups of 256)."""
    groups: int = field(default=2, metadata={"ge": 1, "le": MAX_SIZES["groups"]})
    """Channel groups, each quantized by its own residual VQ (GRQ)."""
    layers: int = field(default=8, metadata={"ge": 1, "le": MAX_SIZES["layers"]})
    """Residual VQ layers per group."""
    codes: int = field(default=512, metadata={"ge": 1, "le": MAX_SIZES["codes"]})
    """Codes per codebook; one codebook per (part, group, layer)."""
    ema_decay: float = field(default=0.99, metadata={"ge": 0, "lt": 1})
    """EMA decay of the codebook statistics. The official release uses 0.8, which lets a code follow
    the last few batches only; with k-means init and dead-code restart 0.99 is stable."""
    commit_weight: float = field(default=0.02, metadata={"ge": 0})
    """Weight of the commitment loss ||z - sg(q)||^2 (paper: 0.02)."""
    wrist_weight: float = field(default=1.0, metadata={"ge": 0})
    """Weight of the wrist-slice reconstruction term; used only when ``part_level`` is False
    (the paper drops it for the part-level tokenizer)."""
    kmeans_init: bool = True
    """Initialise every codebook by k-means on the first training batch's residuals (layer by layer)."""
    kmeans_iters: int = field(default=10, metadata={"ge": 0, "le": MAX_SIZES["kmeans_iters"]})
    """Lloyd iterations of that initialisation."""
    restart_after: int = field(default=50, metadata={"ge": 0, "le": MAX_SIZES["restart_after"]})
    """Dead-code restart: a code unused for this many training steps is replaced by a random
    residual of the current batch (0 = never; the official release never restarts)."""
    version: int = field(default=CONFIG_VERSION, metadata={"cli": False, "choices": (CONFIG_VERSION,)})
    """Format version of this config (checked on load)."""

    def __post_init__(self):
        if isinstance(self.dilations, list):
            object.__setattr__(self, "dilations", tuple(self.dilations))   # JSON gives a list
        validate_config(self)
        # what field metadata cannot say: the number of blocks and a cross-field constraint
        if len(self.dilations) > MAX_SIZES["blocks"]:
            raise UserValueError(f"invalid TokenizerConfig: dilations=({len(self.dilations)} items) must list at most "
                                 f"{MAX_SIZES['blocks']} residual blocks, e.g. (9, 3, 1)")
        if self.code_dim % self.groups:
            raise UserValueError(f"invalid TokenizerConfig: code_dim={self.code_dim} must be divisible by "
                                 f"groups={self.groups} (each group gets code_dim // groups channels)")

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
