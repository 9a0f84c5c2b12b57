"""The vision-language-action model: InternVL3 (transformers' native classes) with a motion vocabulary.

Layers: :mod:`.config` (presets), :mod:`.text_tokenizer` (the tiny preset's BPE), :mod:`.vocab`
(motion tokens <-> motion ids), :mod:`.tiling` (dynamic tiling by ``warp_align``), :mod:`.template`
(chat template), :mod:`.processor` (training sequences with labels), :mod:`.model` (:class:`VLA`:
build, load, save), :mod:`.data` (the pretraining dataset over tokenized folders), :mod:`.loss`
(``pretrain_loss``: logit masking, loss filtering), :mod:`.pretrain` (the ``beingh0 pretrain`` job).
Decoding and evaluation build on these.
"""
from .config import PRESETS, vla_config
from .model import VLA
from .processor import IGNORE_INDEX, VLAProcessor, without_image
from .tiling import tile_grid, tile_image
from .vocab import MotionVocab, add_motion_tokens, paper_layout, resize_for_motion

__all__ = ["PRESETS", "vla_config", "VLA", "VLAProcessor", "IGNORE_INDEX", "without_image", "tile_grid", "tile_image",
           "MotionVocab", "add_motion_tokens", "paper_layout", "resize_for_motion"]
