"""``beingh0 bench generate``: motion decoding speed of the VLA (issue 11).

Job: block-formatted greedy generation (:func:`beingh0.vla.generate.generate`) of ``seconds`` x
``hands`` motion blocks (128 motion tokens + ``<MOT>``/``</MOT>`` per hand-second with the paper's
layout, then the end token) after a prompt of one image tile (``image_seq_length`` image tokens,
random pixels) and 32 random text tokens, for a randomly initialised preset: ``tiny`` in fp32 on the
CPU, ``1b`` (InternVL3-1B's architecture, 159,868 token rows) in bf16 on a GPU.

Implementations, timed side by side on the same prompt:

* ``kv_cache``: our loop with a ``DynamicCache`` (the default);
* ``no_cache``: our loop re-running the whole sequence every step (the baseline: what the official
  release does); it must produce the same tokens (checked: ``same_tokens``);
* ``hf_generate``: transformers' ``model.generate`` with our :class:`BlockFormatLogitsProcessor`
  (the anchor; same tokens expected too).

Reported per record: ``motion_tokens_per_s`` (motion tokens / wall time of the whole generation,
prefill included), ``hand_seconds_per_s`` (generated hand-seconds / wall time),
``time_to_first_block_s`` (prefill to the first complete block, our loop) and ``prefill_s``.
"""
from __future__ import annotations

import torch

from .common import print_table, stamp, time_fn, write_records

__all__ = ["run_generate_bench"]


def _prompt(vla, text_tokens: int, device, seed: int = 0):
    from ..vla.generate import GenerationPrompt

    cfg = vla.config
    g = torch.Generator().manual_seed(seed)
    hi = min(vla.vocab.offset, 150000)
    text = torch.randint(16, hi, (text_tokens,), generator=g)
    img = torch.full((int(cfg.image_seq_length),), int(cfg.image_token_id))
    ids = torch.cat([text[: text_tokens // 2], img, text[text_tokens // 2:]])
    side = int(cfg.vision_config.image_size[0]) if isinstance(cfg.vision_config.image_size, (list, tuple)) else int(cfg.vision_config.image_size)
    pix = torch.randn(1, 3, side, side, generator=g)
    return GenerationPrompt(ids, pix, None)


def run_generate_bench(device: str = "cpu", config: str = "tiny", seconds: int = 1, hands: str = "right",
                       batch: int = 1, repeats: int | None = None, json_path=None, threads: int | None = None,
                       baseline: bool = True, anchor: bool = True, text_tokens: int = 32, layout=None) -> list[dict]:
    """Time the implementations of the module docstring; returns the records (written to ``json_path``).
    ``layout``: a smaller motion-token layout (tests); default the paper's."""
    from ..core.errors import UserValueError
    from ..vla.generate import GenerationConfig, block_slots, generate
    from ..vla.logits import BlockFormatLogitsProcessor
    from ..vla.model import VLA

    if device == "cuda" and not torch.cuda.is_available():
        raise UserValueError("--device cuda but no CUDA GPU is visible")
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    vla = VLA.from_preset(config, device=dev, dtype=dtype, seed=0, attn_implementation="sdpa", layout=layout)
    vla.model.to(dev).eval()
    prompts = [_prompt(vla, text_tokens, dev, seed=i) for i in range(batch)]
    slots = block_slots(seconds, hands)
    n_blocks = len(slots)
    tpb = vla.vocab.layout.tokens_per_block
    outs: dict[str, torch.Tensor] = {}
    info: dict[str, dict] = {}

    def ours(use_cache: bool, name: str):
        def fn():
            r = generate(vla, prompts, GenerationConfig(mode="block", seconds=seconds, hands=hands, use_cache=use_cache))
            outs[name] = torch.stack([s.token_ids for s in r.samples])
            info[name] = {"first_block_s": r.first_block_s, "prefill_s": r.prefill_s, "valid_rate": r.valid_rate}
        return fn

    def hf():
        from ..vla.generate import end_token_id, left_pad, pad_token_id

        eos, pad = end_token_id(vla), pad_token_id(vla)
        ids, mask, pix = left_pad(prompts, pad)
        proc = BlockFormatLogitsProcessor(vla.vocab, n_blocks, eos)
        with torch.no_grad():
            out = vla.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), pixel_values=pix.to(dev, dtype),
                                     logits_processor=[proc], max_new_tokens=n_blocks * vla.vocab.block_len + 1,
                                     do_sample=False, eos_token_id=eos, pad_token_id=pad)
        outs["hf_generate"] = out[:, ids.shape[1]:].cpu()

    impls = [("kv_cache", ours(True, "kv_cache"))]
    if baseline:
        impls.insert(0, ("no_cache", ours(False, "no_cache")))
    if anchor:
        impls.append(("hf_generate", hf))
    kw = {"repeats": repeats} if repeats else {"min_time_s": 1.0, "min_repeats": 1, "max_repeats": 5}
    records, base_ms = [], None
    for name, fn in impls:
        t = time_fn(fn, device, flush_l2=False, **kw)
        wall = t["median_ms"] * 1e-3
        mt = batch * n_blocks * tpb
        same = None
        rec = {"op": "generate", "impl": name, "device": device, "dtype": str(dtype).replace("torch.", ""),
               "shape": {"config": config, "batch": batch, "blocks": n_blocks, "tokens_per_block": tpb,
                         "prompt_tokens": int(prompts[0].input_ids.numel()), "new_tokens": int(n_blocks * vla.vocab.block_len + 1),
                         "mode": "block", "greedy": True},
               **{k: t[k] for k in ("median_ms", "p10_ms", "p90_ms", "peak_mem_mb", "repeats")},
               "max_abs_err_vs_reference": 0.0 if same in (None, True) else float("nan"),
               "same_tokens_as_kv_cache": same, "baseline": "no_cache" if baseline else None,
               "motion_tokens_per_s": mt / wall, "hand_seconds_per_s": batch * n_blocks / wall,
               "time_to_first_block_s": info.get(name, {}).get("first_block_s"),
               "prefill_s": info.get(name, {}).get("prefill_s"), "valid_rate": info.get(name, {}).get("valid_rate"),
               "attention": "sdpa", "torch_threads": torch.get_num_threads() if device == "cpu" else None, **stamp(device)}
        if name == "no_cache":
            base_ms = t["median_ms"]
        rec["speedup_vs_baseline"] = (base_ms / t["median_ms"]) if base_ms else None
        records.append(rec)
    for rec in records:  # every implementation must produce the kv_cache loop's tokens
        if rec["impl"] != "kv_cache":
            same = bool(torch.equal(outs[rec["impl"]], outs["kv_cache"]))
            rec["same_tokens_as_kv_cache"] = same
            rec["max_abs_err_vs_reference"] = 0.0 if same else float("nan")
    print_table([{**r, "shape": f"{r['shape']['batch']}x{r['shape']['blocks']}blk"} for r in records])
    for r in records:
        ttfb = r["time_to_first_block_s"]
        print(f"{r['impl']:12s} {r['motion_tokens_per_s']:10.1f} motion tokens/s  {r['hand_seconds_per_s']:7.2f} hand-s/s"
              + (f"  first block {ttfb * 1e3:.0f} ms" if ttfb is not None else "")
              + (f"  same tokens: {r['same_tokens_as_kv_cache']}" if r["same_tokens_as_kv_cache"] is not None else ""))
    if json_path:
        print(f"wrote {write_records(records, json_path)}")
    return records
