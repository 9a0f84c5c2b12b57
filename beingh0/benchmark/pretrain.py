"""``beingh0 bench pretrain``: training tokens/s and MFU of the VLA's pretraining step.

Job: one optimizer step of the pretraining loss (forward, :func:`beingh0.vla.loss.pretrain_loss`
with logit masking at p = 0.5, backward, AdamW) of a randomly initialised preset (``tiny`` on CPU;
``1b`` -- InternVL3-1B's architecture, 159,868 token rows with the paper's motion vocabulary -- on
a GPU), float32 weights, bf16 autocast on CUDA (fp32 on CPU unless ``--precision bf16``), SDPA
attention. Input: ``batch`` sequences of ``seq_len`` tokens, the first quarter prompt text
(no loss), the rest motion-id targets (the shape of a generation sample, without image: the
vision tower's share is small at InternVL3's 256 tokens per tile).

Anchor (``baseline``): the same step with transformers' own loss (``model(**batch, labels=...)``:
full logits over every position, then ``F.cross_entropy``), no masking. ``max_abs_err_vs_reference``:
|our loss - transformers' loss| on the step's batch with masking off (both fp32 on CPU).

FLOPs per token (PaLM, appendix B): 6 N (N = parameters without the input embedding table, a
lookup) + 12 x layers x hidden x seq_len (attention scores and values). MFU = FLOPs/token x tokens/s
/ peak, with the peak of :func:`beingh0.train.peak_flops` (data-sheet bf16 peak of a known GPU, else
a measured matmul peak on the device in the step's dtype; a CPU MFU is thus relative to what this
CPU's matmul reaches).
"""
from __future__ import annotations

import torch

from .common import print_table, stamp, time_fn, write_records

__all__ = ["run_pretrain_bench", "make_batch"]


def make_batch(vocab, text_vocab: int, batch: int, seq_len: int, device, seed: int = 0) -> dict:
    """Token ids: a prompt of random text ids (first quarter, labels -100), then motion-id targets."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(16, text_vocab, (batch, seq_len), generator=g)
    p = seq_len // 4
    ids[:, p:] = torch.randint(vocab.offset, vocab.offset + vocab.num_motion, (batch, seq_len - p), generator=g)
    labels = ids.clone()
    labels[:, :p] = -100
    return {"input_ids": ids.to(device), "labels": labels.to(device),
            "attention_mask": torch.ones(batch, seq_len, dtype=torch.long, device=device)}


def run_pretrain_bench(device: str = "cpu", config: str = "tiny", batch: int | None = None, seq_len: int | None = None,
                       precision: str | None = None, repeats: int | None = None, json_path=None, threads: int | None = None,
                       baseline: bool = True, gradient_checkpointing: bool = False) -> list[dict]:
    from ..core.errors import UserValueError
    from ..train import peak_flops
    from ..train.optim import make_optimizer
    from ..train.config import TrainConfig
    from ..vla.loss import LossConfig, pretrain_loss
    from ..vla.model import VLA

    if device == "cuda" and not torch.cuda.is_available():
        raise UserValueError("--device cuda but no CUDA GPU is visible")
    if threads:
        torch.set_num_threads(threads)
    precision = precision or ("bf16" if device == "cuda" else "fp32")
    batch = batch or (8 if config == "tiny" else 4)
    seq_len = seq_len or (512 if config == "tiny" else 4096)
    dev = torch.device(device)
    vla = VLA.from_preset(config, device=dev, seed=0, attn_implementation="sdpa")  # random init, no download
    model = vla.model.to(dev).train()
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    text_vocab = vla.vocab.offset
    b = make_batch(vla.vocab, min(text_vocab, 150000), batch, seq_len, dev)
    rng = (vla.vocab.offset, vla.vocab.offset + vla.vocab.num_motion)
    opt = make_optimizer(model, TrainConfig(lr=1e-5))
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    cfg = LossConfig(mask_prob=0.5)

    def ours():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = pretrain_loss(model, b, cfg, motion_range=rng, train=True)
        loss.backward()
        opt.step()

    def anchor():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = model(**b).loss
        loss.backward()
        opt.step()

    with torch.no_grad(), autocast:
        err = abs(float(pretrain_loss(model, b, LossConfig(mask_prob=0.0), motion_range=rng, train=True)[0])
                  - float(model(**b).loss))
    tc = model.config.text_config
    n = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    fpt = 6.0 * n + 12.0 * tc.num_hidden_layers * tc.hidden_size * seq_len
    peak, peak_src = peak_flops(dev, precision)
    tokens = batch * seq_len
    kw = {"repeats": repeats} if repeats else {"min_time_s": 2.0, "min_repeats": 3, "max_repeats": 20}
    records = []
    base_ms = None
    impls = [("transformers_loss", anchor)] if baseline else []
    for impl, fn in impls + [("beingh0", ours)]:
        if device == "cuda":
            torch.cuda.empty_cache()
        t = time_fn(fn, device, flush_l2=False, **kw)
        tps = tokens / (t["median_ms"] * 1e-3)
        rec = {"op": "pretrain_step", "impl": impl, "device": device, "dtype": precision,
               "shape": {"config": config, "batch": batch, "seq_len": seq_len, "vocab": int(model.config.text_config.vocab_size),
                         "hidden": int(tc.hidden_size), "layers": int(tc.num_hidden_layers), "params": int(sum(p.numel() for p in model.parameters()))},
               **{k: t[k] for k in ("median_ms", "p10_ms", "p90_ms", "peak_mem_mb", "repeats")},
               "max_abs_err_vs_reference": err if impl == "beingh0" else 0.0,
               "baseline": "transformers_loss" if baseline else None,
               "tokens_per_s": tps, "flops_per_token": fpt, "flops": fpt * tokens, "achieved_tflops": fpt * tps / 1e12,
               "peak_tflops": peak / 1e12, "peak_source": peak_src, "mfu": fpt * tps / peak,
               "attention": "sdpa", "gradient_checkpointing": gradient_checkpointing, **stamp(device)}
        if impl == "transformers_loss":
            base_ms = t["median_ms"]
        rec["speedup_vs_baseline"] = (base_ms / t["median_ms"]) if base_ms else None
        records.append(rec)
    print_table([{**r, "shape": f"{r['shape']['batch']}x{r['shape']['seq_len']}"} for r in records])
    for r in records:
        print(f"{r['impl']:18s} {r['tokens_per_s']:12.0f} tokens/s  MFU {100 * r['mfu']:.1f}% "
              f"(peak {r['peak_tflops']:.2f} TFLOP/s, {r['peak_source']})"
              + (f"  peak mem {r['peak_mem_mb']:.0f} MB" if r["peak_mem_mb"] is not None else ""))
    if json_path:
        print(f"wrote {write_records(records, json_path)}")
    return records
