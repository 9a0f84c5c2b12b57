"""A deployable stand-in policy on the tiny VLA: the real hard parts of the policy forward (InternViT
tower, pixel-shuffle projector, Qwen2 prefill over image + text + state + action-query tokens) with a
small linear action head. Tests and ``beingh0 export --standin`` use it where no trained policy exists.

The sequence layout is fixed (image features, then text embeddings, then one state token and
``chunk`` query tokens), so nothing depends on where ``<IMG_CONTEXT>`` sits in ``input_ids``: the
data-dependent placeholder mask of InternVL (``aten._is_all_true``) does not reach the exported graph
(ENGINEERING.md, ONNX export).
"""
from __future__ import annotations

import torch
from torch import nn

from .spec import BATCH, PolicySpec, TensorSpec

__all__ = ["VLAActionCore", "standin_policy"]


class VLAActionCore(nn.Module):
    """``forward(pixel_values, input_ids, attention_mask, state) -> actions (B, chunk, action_dim)``.

    ``pixel_values`` (B, tiles, 3, t, t) normalised tiles; ``input_ids``/``attention_mask`` (B, L);
    ``state`` (B, state_dim), normalised.
    """

    def __init__(self, model, *, state_dim: int, action_dim: int, chunk: int, seed: int = 0):
        super().__init__()
        self.model = model  # transformers InternVLForConditionalGeneration
        hidden = model.config.text_config.hidden_size
        g = torch.Generator().manual_seed(seed)
        dtype = model.dtype
        self.state_proj = nn.Linear(state_dim, hidden, dtype=dtype)
        self.queries = nn.Parameter(0.02 * torch.randn(1, chunk, hidden, generator=g).to(dtype))
        self.head = nn.Linear(hidden, action_dim, dtype=dtype)
        self.chunk = chunk

    def forward(self, pixel_values, input_ids, attention_mask, state):
        inner = self.model.model
        b, t = pixel_values.shape[0], pixel_values.shape[1]
        pix = pixel_values.flatten(0, 1).to(self.model.dtype)
        img = inner.get_image_features(pix, vision_feature_layer=-1,
                                       vision_feature_select_strategy="default").pooler_output
        img = img.reshape(b, t * img.shape[1], img.shape[2])
        txt = inner.get_input_embeddings()(input_ids)
        st = self.state_proj(state.to(self.model.dtype))[:, None]
        q = self.queries.expand(b, -1, -1)
        emb = torch.cat([img, txt, st, q], dim=1)
        ones = torch.ones(b, img.shape[1], dtype=attention_mask.dtype, device=attention_mask.device)
        tail = torch.ones(b, 1 + self.chunk, dtype=attention_mask.dtype, device=attention_mask.device)
        mask = torch.cat([ones, attention_mask, tail], dim=1)
        h = inner.language_model(inputs_embeds=emb, attention_mask=mask, use_cache=False).last_hidden_state
        return self.head(h[:, -self.chunk:]).float()


def standin_policy(preset: str = "tiny", *, state_dim: int = 8, action_dim: int = 8, chunk: int = 4,
                   prompt_len: int = 8, grid: tuple[int, int] = (1, 1), thumbnail: bool = False, seed: int = 0,
                   dtype: torch.dtype = torch.float32, device=None) -> tuple[VLAActionCore, PolicySpec]:
    """(module, spec) of a randomly initialised stand-in on VLA preset ``preset`` (eval mode)."""
    from ..vla.model import VLA

    vla = VLA.from_preset(preset, seed=seed, dtype=dtype, device=device)
    core = VLAActionCore(vla.model, state_dim=state_dim, action_dim=action_dim, chunk=chunk, seed=seed)
    core.to(device=device).eval()
    cfg = vla.config
    tile = int(cfg.vision_config.image_size[0])
    tiles = grid[0] * grid[1] + (1 if thumbnail and grid[0] * grid[1] > 1 else 0)
    g = torch.Generator().manual_seed(seed + 1)
    prompt = torch.randint(8, 200, (prompt_len,), generator=g).tolist()
    spec = PolicySpec(
        inputs=[TensorSpec("pixel_values", (BATCH, tiles, 3, tile, tile), "float32"),
                TensorSpec("input_ids", (BATCH, prompt_len), "int64"),
                TensorSpec("attention_mask", (BATCH, prompt_len), "int64"),
                TensorSpec("state", (BATCH, state_dim), "float32")],
        outputs=[TensorSpec("actions", (BATCH, chunk, action_dim), "float32")],
        norm={"state_mean": [0.0] * state_dim, "state_std": [1.0] * state_dim,
              "action_mean": [0.0] * action_dim, "action_std": [1.0] * action_dim},
        meta={"policy": "standin", "preset": preset, "chunk": chunk, "action_dim": action_dim, "state_dim": state_dim,
              "tile": tile, "grid": list(grid), "thumbnail": thumbnail, "prompt_ids": prompt,
              "dtype": str(dtype).removeprefix("torch.")})
    return core, spec
