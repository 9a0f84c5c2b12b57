"""The VLA's processor: images to tiles, instruction samples to token ids with labels.

One training sequence is one ``internvl2_5`` chat turn (:mod:`.template`)::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n{response}<|im_end|>
    '------------------------------ labels -100 ---------------------------------------------------''--- labels = ids ----'

``prompt`` and ``response`` are an instruction sample's texts (:mod:`beingh0.data.instructions`)
with their placeholders expanded:

* ``<IMAGE>`` -> ``<img>`` + ``<IMG_CONTEXT>`` x (tokens per tile x tiles) + ``</img>`` (InternVL; a
  prompt without ``<IMAGE>`` gets ``<IMAGE>\\n`` in front when an image is given, as InternVL does);
* ``<MOTION:side:a-bs>`` -> one block ``<MOT>`` + 128 motion tokens + ``</MOT>`` per (second, hand),
  second-major, left before right (:class:`.vocab.MotionVocab`).

Labels are the token ids on the target -- the response and the ``<|im_end|>`` that closes it --
and -100 everywhere else (labels are aligned with ``input_ids``; the model shifts them). The task
types, all built by :meth:`VLAProcessor.build`:

=========================  =====================================  ====================================
paper task                 sample (``task``)                      input -> target
=========================  =====================================  ====================================
visual-grounded generation ``generation``                         image + instruction -> motion blocks
contextual generation      ``prediction``                         image (+ instruction) + motion history
                                                                  -> the next motion blocks
motion -> text translation ``translation``                        (image +) motion -> text
text -> motion translation ``generation`` via :func:`without_image`  instruction -> motion blocks
=========================  =====================================  ====================================
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from ..core.errors import UserValueError
from ..data.instructions import MotionRef, motion_blocks, parse_placeholders
from .template import IM_END, chat_prompt
from .tiling import tile_image
from .vocab import MotionVocab

__all__ = ["VLAProcessor", "without_image", "IGNORE_INDEX", "IMG_START", "IMG_END", "IMG_CONTEXT"]

IGNORE_INDEX = -100
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
_SPLIT = re.compile(r"(<IMAGE>|<MOTION:(?:left|right|both):\d+-\d+s>)")


def without_image(sample: Mapping[str, Any]) -> dict:
    """A copy of ``sample`` with the ``<IMAGE>`` placeholder removed from its prompt (text -> motion)."""
    s = dict(sample)
    s["prompt"] = s["prompt"].replace("<IMAGE>\n", "").replace("<IMAGE>", "")
    return s


@dataclass
class VLAProcessor:
    """Turns (image, instruction sample, motion ids) into model inputs.

    Attributes:
        tokenizer: the text tokenizer, holding the motion tokens (:func:`.vocab.add_motion_tokens`).
        vocab: where the motion tokens sit.
        tile: tile side in pixels (the vision tower's image size).
        tokens_per_tile: image tokens per tile (``config.image_seq_length``; 256 for InternVL3).
        image_token_id: ``config.image_token_id``; must be the tokenizer's ``<IMG_CONTEXT>``.
        max_tiles, min_tiles, thumbnail: dynamic tiling (:func:`.tiling.tile_grid`).
        system: system prompt name or text (:data:`.template.SYSTEM_PROMPTS`), None for none.
    """

    tokenizer: Any
    vocab: MotionVocab
    tile: int
    tokens_per_tile: int
    image_token_id: int
    max_tiles: int = 12
    min_tiles: int = 1
    thumbnail: bool = True
    system: str | None = "being_h0"
    out_dtype: torch.dtype = torch.float32

    def __post_init__(self):
        ids = self.tokenizer.convert_tokens_to_ids([IMG_START, IMG_END, IMG_CONTEXT, IM_END])
        missing = [t for t, i in zip((IMG_START, IMG_END, IMG_CONTEXT, IM_END), ids) if i is None or i == self.tokenizer.unk_token_id]
        if missing:
            raise UserValueError(f"the tokenizer lacks InternVL's special tokens {missing}; use the checkpoint's own tokenizer")
        self._img_start, self._img_end, ctx, self._im_end = ids
        if ctx != self.image_token_id:
            raise UserValueError(f"the tokenizer's <IMG_CONTEXT> is id {ctx} but the model expects image_token_id "
                                 f"{self.image_token_id}; tokenizer and model config do not belong together")
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._im_end

    @classmethod
    def for_model(cls, config, tokenizer, vocab: MotionVocab, **kw) -> "VLAProcessor":
        """The processor of an ``InternVLConfig`` (tile size and image tokens from the config)."""
        return cls(tokenizer, vocab, tile=int(config.vision_config.image_size[0]),
                   tokens_per_tile=int(config.image_seq_length), image_token_id=int(config.image_token_id), **kw)

    # -------------------------------------------------------------------------------- pieces
    def pixel_values(self, image, pre=None, canvas_wh=None) -> torch.Tensor:
        """(tiles, 3, tile, tile): the image's tiles (+ thumbnail), :func:`.tiling.tile_image`."""
        return tile_image(image, self.tile, self.max_tiles, self.min_tiles, self.thumbnail, pre=pre,
                          canvas_wh=canvas_wh, out_dtype=self.out_dtype)

    def image_ids(self, num_tiles: int) -> torch.Tensor:
        n = self.tokens_per_tile * num_tiles
        return torch.tensor([self._img_start] + [self.image_token_id] * n + [self._img_end])

    def text_ids(self, text: str) -> torch.Tensor:
        return torch.tensor(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    def motion_ids(self, ref: MotionRef, motion: Mapping[str, Any] | None) -> torch.Tensor:
        """Token ids of one ``<MOTION:...>`` placeholder: its blocks, second-major, left before right.

        ``motion[hand]`` is (seconds, tokens_per_block) motion ids of that hand, second 0 at the sample's t0.
        """
        blocks = []
        for second, hand in motion_blocks(ref):
            if motion is None or hand not in motion:
                raise UserValueError(f"{ref} needs the {hand} hand's motion ids; pass motion={{'{hand}': (seconds, "
                                     f"{self.vocab.layout.tokens_per_block}) ids}}")
            ids = torch.as_tensor(motion[hand])
            if ids.dim() != 2 or second >= ids.shape[0]:
                raise UserValueError(f"{ref} needs second {second} of the {hand} hand but its motion ids have shape "
                                     f"{tuple(ids.shape)}; expected (seconds >= {ref.stop}, {self.vocab.layout.tokens_per_block})")
            blocks.append(ids[second])
        return self.vocab.encode_blocks(torch.stack(blocks)).reshape(-1)

    def _expand(self, text: str, motion, num_tiles: int | None) -> torch.Tensor:
        try:
            parse_placeholders(text)  # malformed placeholders raise
        except ValueError as e:
            raise UserValueError(str(e)) from None
        out = []
        for piece in _SPLIT.split(text):
            if not piece:
                continue
            if piece == "<IMAGE>":
                if num_tiles is None:
                    raise UserValueError("the sample's prompt has <IMAGE> but no image was given; pass image=..., or "
                                         "use without_image(sample) for text -> motion")
                out.append(self.image_ids(num_tiles))
            elif piece.startswith("<MOTION:"):
                out.append(self.motion_ids(parse_placeholders(piece)[0], motion))
            else:
                out.append(self.text_ids(piece))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    # -------------------------------------------------------------------------------- samples
    def build(self, sample: Mapping[str, Any], *, image=None, motion: Mapping[str, Any] | None = None,
              pre=None, canvas_wh=None) -> dict:
        """One training sequence.

        Args:
            sample: ``{"prompt", "response"}`` (and ``task``), e.g. from
                :func:`beingh0.data.instructions.instruction_samples`.
            image: uint8 (H, W, 3) scene image, or None (then the prompt must not hold ``<IMAGE>``).
            motion: ``{"left"|"right": (seconds, 128) motion ids}`` for the sample's placeholders.
            pre, canvas_wh: optional alignment folded into the tiling (:func:`.tiling.tile_image`).

        Returns:
            ``{"input_ids" (L,), "labels" (L,), "pixel_values" (tiles, 3, t, t) or None,
            "num_tiles", "task"}``.
        """
        prompt, response = sample["prompt"], sample["response"]
        pixel_values, tiles = None, None
        if image is not None:
            if "<IMAGE>" not in prompt:
                prompt = "<IMAGE>\n" + prompt
            if prompt.count("<IMAGE>") != 1:
                raise UserValueError(f"a prompt takes one <IMAGE>, got {prompt.count('<IMAGE>')}")
            pixel_values = self.pixel_values(image, pre, canvas_wh)
            tiles = pixel_values.shape[0]
        if "<IMAGE>" in response:
            raise UserValueError("the response cannot hold <IMAGE>; images go in the prompt")
        context = self._expand(chat_prompt(prompt, self.system), motion, tiles)
        target = torch.cat([self._expand(response, motion, None), torch.tensor([self._im_end])])
        input_ids = torch.cat([context, target])
        labels = torch.cat([torch.full_like(context, IGNORE_INDEX), target])
        return {"input_ids": input_ids, "labels": labels, "pixel_values": pixel_values,
                "num_tiles": 0 if tiles is None else tiles, "task": sample.get("task")}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict:
        """Right-pad a list of :meth:`build` outputs into a batch: ``input_ids``, ``attention_mask``,
        ``labels`` (-100 on padding) (B, L), and ``pixel_values`` (all tiles in batch order) or None."""
        if not items:
            raise UserValueError("collate needs at least one sample")
        L = max(int(it["input_ids"].numel()) for it in items)
        B = len(items)
        input_ids = torch.full((B, L), self.pad_token_id, dtype=torch.long)
        labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for b, it in enumerate(items):
            n = it["input_ids"].numel()
            input_ids[b, :n], labels[b, :n], mask[b, :n] = it["input_ids"], it["labels"], 1
        pix = [it["pixel_values"] for it in items if it.get("pixel_values") is not None]
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
                "pixel_values": torch.cat(pix) if pix else None}
