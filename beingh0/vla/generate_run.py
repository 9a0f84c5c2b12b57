"""``beingh0 generate``: one image + one instruction -> generated hand motion on disk.

:func:`resolve_checkpoint` finds the VLA and its motion tokenizer: ``DIR`` may be a pretraining run
folder (``DIR/model`` + ``DIR/motion_tokenizer``, the layout ``beingh0 pretrain`` writes) or a
``VLA.save_pretrained`` folder (then the tokenizer comes from ``tokenizer=`` or from
``DIR/../motion_tokenizer``). :func:`generate_files` writes into ``out``:

* ``motion.npz``: per hand ``<hand>_global_orient`` (T, 3), ``<hand>_hand_pose`` (T, 45),
  ``<hand>_trans`` (T, 3) (camera frame, metres, radians, 15 FPS, Being-H0's wrist ``trans``),
  ``<hand>_valid`` (T,), ``<hand>_betas`` (10,) zeros; ``blocks`` (n, 128) motion ids (-1: invalid),
  ``valid`` (n,), ``slots`` (n, 2) as (second, 0 left / 1 right), ``token_ids``, ``fps``;
* ``strip.png`` and ``motion.mp4``: the hands drawn over the image (:mod:`.render`);
* ``generation.json``: instruction, mode, valid rate, timing, the files.

The image is aligned to Being-H0's virtual camera before tiling, as the pretraining data is
(``K_tgt K_src^-1``, :mod:`beingh0.align`), with ``intrinsics`` or, without them, the virtual camera's
105-degree field of view (:func:`.render.default_intrinsics`); the motion comes out in the camera frame
of the image and is drawn with the same intrinsics.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.errors import UserFileError, UserValueError

__all__ = ["generate_files", "resolve_checkpoint"]


def resolve_checkpoint(checkpoint, tokenizer=None) -> tuple[Path, Path]:
    """(VLA folder, motion tokenizer folder) of ``checkpoint`` (a run folder or a model folder)."""
    root = Path(checkpoint)
    if not root.exists():
        raise UserFileError(f"checkpoint {root} does not exist; pass a pretraining run folder (with model/ and "
                            "motion_tokenizer/) or a VLA folder (with config.json)")
    if not root.is_dir():
        raise UserFileError(f"checkpoint {root} is a file; pass the folder (a run folder or a VLA folder)")
    model = root / "model" if (root / "model" / "config.json").is_file() else root
    if not (model / "config.json").is_file():
        raise UserFileError(f"{root} holds neither config.json nor model/config.json; is it a VLA or pretraining run folder?")
    if tokenizer is not None:
        tok = Path(tokenizer)
    else:
        cands = [root / "motion_tokenizer", model.parent / "motion_tokenizer"]
        tok = next((c for c in cands if c.is_dir()), None)
        if tok is None:
            raise UserFileError(f"no motion tokenizer next to {model} (looked for {cands[0]}); pass --tokenizer DIR")
    if (tok / "tokenizer" / "tokenizer.json").is_file():  # a `beingh0 tokenizer train` output folder
        tok = tok / "tokenizer"
    return model, tok


def generate_files(image_path, instruction: str, checkpoint, out, *, tokenizer=None, config=None, frame: int = 0,
                   intrinsics=None, device: str = "cpu", progress: bool = True, render: bool = True) -> dict:
    """Run one generation and write the files of the module docstring; returns the JSON record."""
    from tqdm.auto import tqdm

    from ..align.viz import load_frame
    from ..tokenizer import load_tokenizer
    from .generate import GenerationConfig, generate, make_prompt
    from .model import VLA
    from .render import default_intrinsics, render_generation

    config = config or GenerationConfig()
    if config.mode == "soft":
        raise UserValueError("soft-formatted decoding needs ground truth; `beingh0 generate` takes free or block")
    if not isinstance(instruction, str) or not instruction.strip():
        raise UserValueError("the instruction is empty; pass the task in words, e.g. \"pick up the cup\"")
    image = load_frame(Path(image_path), frame)
    model_dir, tok_dir = resolve_checkpoint(checkpoint, tokenizer)
    if intrinsics is not None and len(intrinsics) != 4:
        raise UserValueError(f"--intrinsics takes fx fy cx cy, got {len(intrinsics)} numbers")
    vla = VLA.from_pretrained(model_dir, device=device)
    tok = load_tokenizer(tok_dir, device=device)
    if tok.layout != vla.vocab.layout:
        raise UserValueError(f"the motion tokenizer in {tok_dir} has layout {tok.layout} but the VLA {vla.vocab.layout}; "
                             "pass the tokenizer the VLA was trained with (--tokenizer)")
    # the model saw images aligned to Being-H0's virtual camera (PretrainDataset, align=True): do the same
    from ..align.camera import OFFICIAL_TARGET, Intrinsics
    from ..align.geometry import frame_from_src_matrix

    H, W = image.shape[:2]
    K = tuple(float(v) for v in (intrinsics or default_intrinsics(W, H)))
    tgt = OFFICIAL_TARGET.frame
    pre = frame_from_src_matrix(Intrinsics(*K, W, H), tgt)
    prompt = make_prompt(vla, instruction, image=image, seconds=config.seconds, hands=config.hands, pre=pre,
                         canvas_wh=(tgt.width, tgt.height))
    bar = tqdm(total=1, desc="generate", unit="tok", disable=not progress, dynamic_ncols=True)

    def tick(step, total):
        bar.total = total
        bar.update(step - bar.n)

    try:
        res = generate(vla, prompt, config, motion_tokenizer=tok, progress=tick)
    finally:
        bar.close()
    s = res[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {"blocks": s.blocks.numpy(), "valid": s.valid.numpy(), "token_ids": s.token_ids.numpy(),
              "slots": np.array([(sec, 0 if h == "left" else 1) for sec, h in s.slots], np.int64).reshape(-1, 2),
              "fps": np.array(15.0)}
    for hand, p in s.mano.items():
        for k in ("global_orient", "hand_pose", "trans", "valid"):
            arrays[f"{hand}_{k}"] = p[k].numpy()
        arrays[f"{hand}_betas"] = np.zeros(10)
    np.savez(out / "motion.npz", **arrays)
    files = {"npz": str(out / "motion.npz")}
    if render:
        paths = render_generation(image, s.mano, out, intrinsics=K, caption=instruction, progress=progress)
        files.update({k: str(v) for k, v in paths.items()})
    rec = {"instruction": instruction, "image": str(image_path), "checkpoint": str(model_dir), "tokenizer": str(tok_dir),
           "mode": config.mode, "seconds": config.seconds, "hands": config.hands, "greedy": config.greedy,
           "seed": config.seed, "valid_rate": s.valid_rate, "invalid_reasons": [r for r in s.parse.reasons if r],
           "text": s.text, "new_tokens": int(s.token_ids.numel()), "seconds_taken": res.total_s, "files": files}
    (out / "generation.json").write_text(json.dumps(rec, indent=1))
    return rec
