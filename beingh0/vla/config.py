"""Architecture presets of the VLA: InternVL3 (InternViT + pixel-shuffle projector + Qwen2 LLM) as
``transformers.InternVLConfig``.

=======  ===============================================================================  =========
preset   architecture                                                                     params
=======  ===============================================================================  =========
tiny     2-layer ViT (64 px tiles, 8 px patches, width 64) + 4-layer Qwen2 (width 128),   1.18 M
         1,024-token byte-level BPE (:mod:`.text_tokenizer`): trains on a 2-core CPU
1b       InternVL3-1B: InternViT-300M-448px-V2.5 + Qwen2.5-0.5B (896 x 24)                938.2 M
8b       InternVL3-8B: InternViT-300M + Qwen2.5-7B (3584 x 28)                            7,944 M
14b      InternVL3-14B: InternViT-300M + Qwen2.5-14B (5120 x 48)                          15,117 M
=======  ===============================================================================  =========

Params without the 8,194 motion rows (:mod:`.vocab`), which add 2 x 8,194 x hidden (untied).

Values from ``../shared/reference/internvl3-configs.md`` (sections B-D, J). The 1B values were read
from the released config; for 8B and 14B the rope scaling, ``max_position_embeddings`` and the 14B
``rms_norm_eps`` are not verified: a real checkpoint's own ``config.json`` always wins
(:meth:`.model.VLA.from_pretrained` never reads a preset). All presets keep InternVL3's untied
output head (``tie_word_embeddings=False``) and use torch SDPA attention by default (the official
release runs eager attention).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from transformers import InternVLConfig, InternVLVisionConfig, Qwen2Config

from ..core.errors import UserValueError

__all__ = ["PRESETS", "VLAPreset", "preset", "vla_config", "tokens_per_tile", "INTERNVL3_TEXT_VOCAB",
           "TINY_TEXT_VOCAB", "TINY_SPECIAL_TOKENS"]

#: Rows of InternVL3's embedding / output head (Qwen2.5's 151,643 + 31 added tokens).
INTERNVL3_TEXT_VOCAB = 151674
#: Size of the tiny preset's byte-level BPE (special tokens included).
TINY_TEXT_VOCAB = 1024
#: The tiny BPE's special tokens, in id order (ids 0..5); InternVL3 uses the same strings.
TINY_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>")

# InternViT-300M-448px-V2.5, shared by all three InternVL3 sizes (reference section B; the -hf
# conversion sets attention_bias=True for the fused qkv bias).
_INTERNVIT_300M = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                       hidden_act="gelu", attention_bias=True, use_qk_norm=False, norm_type="layer_norm",
                       layer_norm_eps=1e-6, image_size=448, patch_size=14, layer_scale_init_value=0.1,
                       use_mean_pooling=True, initializer_range=1e-10)
# Qwen2 fields shared by the three InternVL3 LLMs (reference section D).
_QWEN = dict(vocab_size=INTERNVL3_TEXT_VOCAB, hidden_act="silu", tie_word_embeddings=False, use_sliding_window=False,
             bos_token_id=151643, eos_token_id=151645, pad_token_id=151643, initializer_range=0.02)


@dataclass(frozen=True)
class VLAPreset:
    """One architecture: the keyword arguments of the vision and text configs, and image handling."""

    name: str
    vision: dict
    text: dict
    image_token_id: int
    max_tiles: int = 12
    """Dynamic tiling: at most this many tiles per image (InternVL3: 12), plus a thumbnail."""
    use_thumbnail: bool = True
    downsample_ratio: float = 0.5
    notes: str = ""
    extra: dict = field(default_factory=dict)


PRESETS: dict[str, VLAPreset] = {
    "tiny": VLAPreset(
        "tiny",
        vision=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, hidden_act="gelu",
                    attention_bias=True, image_size=64, patch_size=8, layer_norm_eps=1e-6, layer_scale_init_value=0.1,
                    use_mean_pooling=True, initializer_range=0.02),
        text=dict(vocab_size=TINY_TEXT_VOCAB, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "default", "rope_theta": 1e6}, hidden_act="silu",
                  tie_word_embeddings=False, bos_token_id=0, eos_token_id=2, pad_token_id=0, initializer_range=0.02),
        image_token_id=TINY_SPECIAL_TOKENS.index("<IMG_CONTEXT>"), max_tiles=4,
        notes="CPU tests and quick pretraining; 64 px tiles give 16 image tokens each"),
    "1b": VLAPreset(
        "1b", vision=_INTERNVIT_300M,
        text=dict(_QWEN, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e6}),
        image_token_id=151667, notes="InternVL3-1B (values read from the released config)"),
    "8b": VLAPreset(
        "8b", vision=_INTERNVIT_300M,
        text=dict(_QWEN, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                  num_key_value_heads=4, max_position_embeddings=32768, rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e6}),
        image_token_id=151667, notes="InternVL3-8B; rope scaling and max positions assumed as 1B (unverified)"),
    "14b": VLAPreset(
        "14b", vision=_INTERNVIT_300M,
        text=dict(_QWEN, hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                  num_key_value_heads=8, max_position_embeddings=32768, rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e6}),
        image_token_id=151667, notes="InternVL3-14B; rope scaling, max positions and rms_norm_eps (base 1e-5, "
                                     "instruct 1e-6) unverified"),
}


def preset(name: str) -> VLAPreset:
    if name not in PRESETS:
        raise UserValueError(f"unknown VLA preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def tokens_per_tile(vision: InternVLVisionConfig, downsample_ratio: float) -> int:
    """Image tokens one tile becomes: (image / patch)^2 patches, times downsample_ratio^2 after the
    pixel shuffle (InternVL3: (448 / 14)^2 x 0.25 = 256)."""
    gh, gw = vision.image_size[0] // vision.patch_size[0], vision.image_size[1] // vision.patch_size[1]
    return int(round(gh * gw * downsample_ratio * downsample_ratio))


def vla_config(name: str, *, attn_implementation: str = "sdpa") -> InternVLConfig:
    """The ``InternVLConfig`` of preset ``name`` (text vocabulary without motion tokens).

    ``attn_implementation``: "sdpa" (default), "eager", or a flash backend transformers knows.
    """
    p = preset(name)
    vision = InternVLVisionConfig(**p.vision)
    text = Qwen2Config(**p.text)
    grid = vision.image_size[0] // vision.patch_size[0]
    if vision.image_size[0] % vision.patch_size[0] or grid % round(1 / p.downsample_ratio):
        raise ValueError(f"preset {name}: the {grid}x{grid} patch grid must be divisible by 1/downsample_ratio")
    cfg = InternVLConfig(vision_config=vision, text_config=text, image_token_id=p.image_token_id,
                         image_seq_length=tokens_per_tile(vision, p.downsample_ratio),
                         downsample_ratio=p.downsample_ratio, projector_hidden_act="gelu", vision_feature_layer=-1,
                         vision_feature_select_strategy="default", tie_word_embeddings=False)
    set_attention(cfg, attn_implementation)
    return cfg


def set_attention(cfg: InternVLConfig, attn_implementation: str) -> None:
    """Select the attention backend of the model and both sub-models."""
    for c in (cfg, cfg.vision_config, cfg.text_config):
        c._attn_implementation = attn_implementation
