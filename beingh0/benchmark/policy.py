"""``beingh0 bench policy``: policy forward latency, image + state -> action chunk, preprocessing included.

Times :meth:`beingh0.policy.BeingH0Policy.predict_action_chunk` on one observation (tiling by
``warp_align``, tokenisation through the prompt builder, the VLA forward, the head, normalisation
and its inverse) and, separately, the tensor-only :meth:`~beingh0.policy.BeingH0Policy.forward_core`
(model only) on the prepared inputs. Records follow the bench JSON layout (docs: ENGINEERING.md
section 5); the anchor is ``forward_core`` (``speedup_vs_baseline`` < 1 = the share preprocessing
adds). :func:`policy_latency` is the function the deploy runtimes extend (they add their own impls).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["policy_latency", "run", "tiny_policy"]


def tiny_policy(state_dim: int = 26, action_dim: int = 26, cameras=("cam_high",), chunk: int = 16, seed: int = 0):
    """A randomly initialised tiny policy with statistics of random data (for latency only)."""
    from ..policy import BeingH0Policy, PolicyConfig, PolicySpec
    from ..vla import VLA

    rng = np.random.default_rng(seed)
    cfg = PolicyConfig(chunk=chunk, num_queries=min(16, chunk))
    spec = PolicySpec.from_tables(rng.normal(size=(64, state_dim)), rng.normal(size=(64, action_dim)), cameras, cfg)
    return BeingH0Policy(VLA.from_preset("tiny", seed=seed), cfg, spec, seed=seed)


def policy_latency(policy=None, *, image_hw=(480, 640), repeats: int | None = None, device: str = "cpu",
                   threads: int | None = None) -> list[dict]:
    """Latency records of ``predict_action_chunk`` (end to end) and ``forward_core`` (model only), batch 1,
    one ``image_hw`` uint8 image per camera. ``repeats`` None: adaptive (:func:`.common.time_fn`)."""
    from .common import device_name, set_threads, stamp, time_fn

    policy = policy or tiny_policy()
    policy.eval().to(device)
    rng = np.random.default_rng(0)
    obs = {"observation.state": rng.normal(size=policy.spec.state_dim).astype(np.float32), "task": "pick up the cup"}
    for cam in policy.spec.cameras:
        obs[f"observation.images.{cam}"] = rng.integers(0, 255, size=(*image_hw, 3), dtype=np.uint8)
    old = set_threads(threads)
    try:
        b = policy.prepare(obs)
        core_args = (b["pixel_values"], b["input_ids"], b["attention_mask"], b["observation.state"])
        with torch.no_grad():
            ref = policy.forward_core(*core_args)
            err = float((policy.predict_action_chunk(obs) - ref[0]).abs().max())
            t_core = time_fn(lambda: policy.forward_core(*core_args), device, repeats=repeats)
            t_full = time_fn(lambda: policy.predict_action_chunk(obs), device, repeats=repeats)
        dev = device_name(device)
    finally:
        set_threads(old)
    shape = {"image": list(image_hw) + [3], "cameras": len(policy.spec.cameras), "seq_len": int(b["input_ids"].shape[1]),
             "tiles": int(b["pixel_values"].shape[0]), "state_dim": policy.spec.state_dim,
             "chunk": [policy.config.chunk, policy.spec.action_dim], "batch": 1}
    recs = []
    for impl, t, e in (("forward_core", t_core, 0.0), ("predict_action_chunk", t_full, err)):
        recs.append({"op": "policy_forward", "impl": impl, "device": dev, "dtype": "float32", "shape": shape,
                     "preset": policy.vla.preset, **t, "max_abs_err_vs_reference": e, "baseline": "forward_core",
                     "speedup_vs_baseline": t_core["median_ms"] / t["median_ms"], **stamp(device)})
    return recs


def run(*, repeats: int | None = None, threads: int | None = 1, device: str = "cpu", json_path=None) -> list[dict]:
    """The ``beingh0 bench policy`` entry: tiny, printed, and written as JSON to ``json_path``."""
    from .common import print_table, write_records

    recs = policy_latency(repeats=repeats, threads=threads, device=device)
    print_table([dict(r, shape=f"seq {r['shape']['seq_len']}") for r in recs])
    print("(forward_core: model only; predict_action_chunk: + tiling, prompt, normalisation; batch 1, one 640x480 image)")
    if json_path is not None:
        print(f"wrote {write_records(recs, json_path)}")
    return recs
