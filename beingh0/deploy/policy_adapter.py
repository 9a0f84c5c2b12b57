"""A trained ``beingh0.policy.BeingH0Policy`` as a deployable core + :class:`.spec.PolicySpec`.

The policy's ``forward_core(pixel_values (N tiles, 3, t, t), input_ids, attention_mask, state)`` is
tensor-only with normalisation inside; :class:`PolicyCore` gives it the deploy protocol's
per-sample tiles ``(B, T, 3, t, t)``. The deployment fixes what training left free: the image size
of every camera (from the policy's intrinsics, or ``image_sizes``) and the instruction, so the
tiling (alignment to the virtual camera folded in, exactly as the policy's ``PromptBuilder`` does:
checked on a random image at build time) and the prompt are constants of the spec
(``meta['cameras']``, ``meta['prompt_ids']``); the batch stays dynamic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.errors import UserValueError
from .spec import BATCH, PolicySpec, TensorSpec

__all__ = ["PolicyCore", "deployable_from_policy", "load_policy_folder"]


class PolicyCore(nn.Module):
    """``forward(pixel_values (B, T, 3, t, t), input_ids (B, L), attention_mask (B, L), state (B, S))``
    -> (B, chunk, A) actions in the dataset's units."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def forward(self, pixel_values, input_ids, attention_mask, state):
        return self.policy.forward_core(pixel_values.flatten(0, 1), input_ids, attention_mask, state).float()


def deployable_from_policy(policy, *, image_sizes: dict | None = None, instruction: str | None = None,
                           check: bool = True) -> tuple[PolicyCore, PolicySpec]:
    """(core, spec) of ``policy`` for images of ``image_sizes`` ``{camera: (width, height)}`` (default:
    the sizes of the intrinsics the policy was trained with) and ``instruction`` (default: the
    policy's)."""
    from ..vla.tiling import tile_grid, tile_matrices

    b = policy.builder
    proc = b.proc
    sizes = dict(image_sizes or {})
    for cam in b.cameras:
        if cam not in sizes and cam in b.intrinsics:
            sizes[cam] = (int(b.intrinsics[cam][4]), int(b.intrinsics[cam][5]))
    missing = [c for c in b.cameras if c not in sizes]
    if missing:
        raise UserValueError(f"the image size of cameras {missing} is unknown (no intrinsics in the policy); pass "
                             "--image-size CAMERA=WIDTHxHEIGHT (image_sizes={camera: (width, height)} in Python)")
    cams, counts, rng = [], [], np.random.default_rng(0)
    for cam in b.cameras:
        W, H = (int(v) for v in sizes[cam])
        pre, canvas = b._pre(cam, W, H)  # the builder's own alignment (or none): one implementation
        cw, ch = (W, H) if canvas is None else canvas
        grid = tile_grid(cw, ch, proc.tile, proc.min_tiles, proc.max_tiles)
        mats = tile_matrices(cw, ch, grid, proc.tile, proc.thumbnail, pre)
        if check:  # the runtime's tiles must be the builder's
            from ..ops.warp import warp_align

            img = torch.from_numpy(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
            want, _ = b.pixel_values({f"observation.images.{cam}": img})
            got = torch.cat([warp_align(img[None], m, (proc.tile, proc.tile), return_mask=False).image for m in mats])
            if got.shape != want.shape or not torch.allclose(got.float(), want.float(), atol=1e-3):
                raise RuntimeError(f"camera {cam}: deploy tiling differs from the policy's PromptBuilder")
        cams.append({"name": cam, "width": W, "height": H, "matrices": mats.tolist(), "grid": list(grid)})
        counts.append(int(mats.shape[0]))
    text = instruction if instruction is not None else policy.config.instruction
    ids = b.input_ids(counts, text).tolist()
    T, L, S, A = sum(counts), len(ids), policy.spec.state_dim, policy.spec.action_dim
    chunk = int(policy.config.chunk)
    hist = int(getattr(policy.config, "state_history", 1))  # (B, H, S) states, oldest first, at the data's fps
    spec = PolicySpec(
        inputs=[TensorSpec("pixel_values", (BATCH, T, 3, proc.tile, proc.tile), "float32"),
                TensorSpec("input_ids", (BATCH, L), "int64"), TensorSpec("attention_mask", (BATCH, L), "int64"),
                TensorSpec("state", (BATCH, S) if hist == 1 else (BATCH, hist, S), "float32")],
        outputs=[TensorSpec("actions", (BATCH, chunk, A), "float32")],
        norm={},  # inside forward_core
        meta={"policy": "beingh0", "tile": proc.tile, "cameras": cams, "prompt_ids": ids, "instruction": text,
              "chunk": chunk, "action_dim": A, "state_dim": S, "state_history": hist, "normalization": "inside the graph",
              "norm_stats": policy.spec.norm, "state_names": policy.spec.state_names,
              "action_names": policy.spec.action_names, "fps": policy.spec.fps,
              "n_action_steps": getattr(policy.config, "n_action_steps", None),
              "dtype": str(policy.backbone.dtype).removeprefix("torch.")})
    return PolicyCore(policy).eval(), spec


def load_policy_folder(path, *, device=None, dtype=None, **kw) -> tuple[PolicyCore, PolicySpec]:
    """(core, spec) of a policy folder ``beingh0 posttrain`` wrote (``policy.json`` + weights)."""
    from ..policy import BeingH0Policy

    vla_kw = {"dtype": dtype} if dtype is not None else {}
    pol = BeingH0Policy.from_pretrained(Path(path), device=device, **vla_kw)
    pol.eval()
    return deployable_from_policy(pol, **kw)
