"""The policy's ONE prompt builder: used by the training dataset and by serving alike.

A policy input is one ``internvl2_5`` chat turn (:func:`beingh0.vla.template.chat_prompt`, the same
system prompt as pretraining) whose user text is one ``<img>...</img>`` block per camera (in the
policy's camera order) followed by the instruction, and after the assistant header the policy's
slots::

    <|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\n<img>CTX*n</img>\\n...{instruction}<|im_end|>\\n<|im_start|>assistant\\n[S][Q1]...[Qk]

``[S]`` is the proprioception token and ``[Q*]`` the action queries: their ids are a placeholder
(the pad id); the model replaces their embeddings (``inputs_embeds``). A batch is **left**-padded,
so the slots are always the last ``1 + num_queries`` positions (a fixed layout, no data-dependent
indexing in the forward). Images go through :func:`beingh0.vla.tiling.tile_image` (``warp_align``):
with the camera's intrinsics known the weak-perspective alignment to Being-H0's virtual camera is
folded into the same resample (as the pretraining data does), otherwise a plain fused resize.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..core.errors import UserValueError
from ..vla.processor import VLAProcessor
from ..vla.template import chat_prompt

__all__ = ["PromptBuilder", "as_uint8_image"]


def as_uint8_image(img, name: str) -> torch.Tensor:
    """uint8 (H, W, 3) from a uint8 (H, W, 3) array (as recorded) or a float (3, H, W) tensor in [0, 1]
    (LeRobot's convention after its dataset transform)."""
    t = torch.from_numpy(np.ascontiguousarray(img)) if isinstance(img, np.ndarray) else img
    if not isinstance(t, torch.Tensor):
        raise UserValueError(f"{name}: expected an image array, got {type(img).__name__}")
    if t.dtype == torch.uint8 and t.dim() == 3 and t.shape[-1] == 3:
        return t
    if t.is_floating_point() and t.dim() == 3 and t.shape[0] == 3:
        return (t.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
    raise UserValueError(f"{name}: expected uint8 (H, W, 3) or float (3, H, W) in [0, 1], got {tuple(t.shape)} {t.dtype}")


class PromptBuilder:
    """Observation (images, instruction) -> ``{"input_ids" (L,), "pixel_values" (tiles, 3, t, t)}``.

    Args:
        processor: the VLA's :class:`~beingh0.vla.processor.VLAProcessor` (tokenizer, tile size,
            image tokens, system prompt).
        cameras: camera names (``observation.images.<cam>``), in prompt order.
        intrinsics: ``{cam: (fx, fy, cx, cy, width, height)}`` for cameras whose intrinsics are
            known (pixels of the image as recorded); these cameras are aligned (an observation may
            carry per-image ``intrinsics.observation.images.<cam>`` fx, fy, cx, cy, as
            ``RobotDataset`` items do); others get a plain resize.
        num_queries: action-query slots after the proprioception slot.
        align: use the intrinsics (False: plain resize for every camera).
        state_history: proprioception frames per sample (``PolicyConfig.state_history``): the
            training items and the served observations both go through :meth:`states`.
    """

    def __init__(self, processor: VLAProcessor, cameras: Sequence[str], intrinsics: Mapping | None = None,
                 num_queries: int = 16, align: bool = True, state_history: int = 1):
        self.proc, self.cameras, self.num_queries = processor, tuple(cameras), int(num_queries)
        self.state_history = int(state_history)
        self.intrinsics = {k: tuple(float(x) for x in v) for k, v in (intrinsics or {}).items() if v is not None}
        self.align = bool(align)
        self.slot_id = int(processor.pad_token_id)
        self._head_cache: dict[str, torch.Tensor] = {}

    @property
    def num_slots(self) -> int:
        return 1 + self.num_queries

    def _pre(self, cam: str, w: int, h: int, k4=None):
        """(pre, canvas) of the alignment to Being-H0's virtual camera, or (None, None) for a plain resize.

        ``k4``: fx, fy, cx, cy of this image (the observation's ``intrinsics.observation.images.<cam>``);
        else the intrinsics the policy was trained with (for images of that size)."""
        if not (self.align and cam in self.intrinsics):
            return None, None
        from ..align.camera import OFFICIAL_TARGET, Intrinsics
        from ..align.geometry import frame_from_src_matrix

        if k4 is not None:
            fx, fy, cx, cy = (float(x) for x in np.asarray(k4.cpu() if isinstance(k4, torch.Tensor) else k4).reshape(-1)[:4])
        else:
            fx, fy, cx, cy, W, H = self.intrinsics[cam]
            if (int(W), int(H)) != (w, h):
                raise UserValueError(f"camera {cam}: intrinsics are for {int(W)}x{int(H)} images but the image is {w}x{h}; "
                                     f"pass images as recorded, or their intrinsics as 'intrinsics.observation.images.{cam}'")
        tgt = OFFICIAL_TARGET.frame
        return frame_from_src_matrix(Intrinsics(fx, fy, cx, cy, w, h), tgt), (tgt.width, tgt.height)

    def pixel_values(self, images: Mapping) -> tuple[torch.Tensor, list[int]]:
        """Tiles of every camera in order, and the tile count of each."""
        tiles, counts = [], []
        for cam in self.cameras:
            key = f"observation.images.{cam}"
            if key not in images or images[key] is None:
                raise UserValueError(f"observation has no {key!r}; the policy was trained with cameras "
                                     f"{list(self.cameras)} (have: {sorted(k for k in images if k.startswith('observation.images.'))})")
            img = as_uint8_image(images[key], key)
            pre, canvas = self._pre(cam, int(img.shape[1]), int(img.shape[0]), images.get("intrinsics." + key))
            pv = self.proc.pixel_values(img, pre, canvas)
            tiles.append(pv)
            counts.append(int(pv.shape[0]))
        return torch.cat(tiles), counts

    def input_ids(self, tile_counts: Sequence[int], instruction: str) -> torch.Tensor:
        """Token ids of the prompt, ending with the proprioception and query slots."""
        if not isinstance(instruction, str):
            raise UserValueError(f"the instruction (task) must be a string, got {type(instruction).__name__}")
        if "<IMAGE>" in instruction or "<MOTION:" in instruction:
            raise UserValueError("the instruction may not contain <IMAGE> or <MOTION:...> placeholders")
        text = chat_prompt("<IMAGE>\n" * len(tile_counts) + instruction, self.proc.system)
        pieces = text.split("<IMAGE>")
        out = [self.proc.text_ids(pieces[0])]
        for n, piece in zip(tile_counts, pieces[1:]):
            out += [self.proc.image_ids(n), self.proc.text_ids(piece)]
        out.append(torch.full((self.num_slots,), self.slot_id, dtype=torch.long))
        return torch.cat([o.to(torch.long) for o in out])

    def states(self, state: torch.Tensor) -> torch.Tensor:
        """Batched states (B, S) or histories (B, H', S) (oldest first, the last = the current state) ->
        the model's layout: (B, S) with ``state_history`` 1, else (B, H, S) -- the last H frames, a
        shorter history padded at the front with its oldest frame (LeRobot's padding at an episode start)."""
        H = self.state_history
        if state.dim() == 2:
            state = state.unsqueeze(1)
        if H == 1:
            return state[:, -1]
        state = state[:, -H:]
        if state.shape[1] < H:
            state = torch.cat([state[:, :1].expand(-1, H - state.shape[1], -1), state], 1)
        return state

    def encode(self, observation: Mapping, instruction: str) -> dict:
        """One sample: ``{"input_ids" (L,), "pixel_values" (tiles, 3, t, t)}``."""
        pv, counts = self.pixel_values(observation)
        return {"input_ids": self.input_ids(counts, instruction), "pixel_values": pv}

    def collate(self, items: Sequence[Mapping]) -> dict:
        """Left-pad encoded samples: ``input_ids``, ``attention_mask`` (B, L), ``pixel_values`` (all tiles, batch order)."""
        if not items:
            raise UserValueError("collate needs at least one sample")
        L = max(int(it["input_ids"].numel()) for it in items)
        B = len(items)
        ids = torch.full((B, L), int(self.proc.pad_token_id), dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for b, it in enumerate(items):
            n = int(it["input_ids"].numel())
            ids[b, L - n:], mask[b, L - n:] = it["input_ids"], 1
        return {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.cat([it["pixel_values"] for it in items])}
