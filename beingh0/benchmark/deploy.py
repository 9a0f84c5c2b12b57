"""End-to-end policy latency per runtime backend: camera image (uint8, host memory) + state in ->
action chunk out (host memory), preprocessing (``warp_align`` tiles), normalisation and transfers
included -- what the control loop waits for.

CPU: the tiny stand-in (``standin:tiny``). GPU: the 1B architecture in bf16 with random weights
(``standin:1b``; latency does not depend on the weights): eager, ``torch.compile`` with CUDA graphs
(``mode="reduce-overhead"``) and ONNX Runtime when its CUDA provider is present. Targets on an H100
for the compiled path: p50 <= 8 ms, p99 <= 12 ms and >= 5x faster than eager (recorded per record as
``target`` / ``meets_target``). One JSON record per backend (ENGINEERING.md section 5) with p50/p99
besides median/p10/p90; ``max_abs_err_vs_reference`` is against eager on the same inputs.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .common import stamp, write_records

__all__ = ["GPU_TARGET", "run_deploy_bench"]

GPU_TARGET = {"p50_ms": 8.0, "p99_ms": 12.0, "speedup_vs_eager": 5.0, "device": "H100"}


def _percentiles(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms)
    return {"median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)), "p90_ms": float(np.percentile(a, 90)),
            "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()),
            "repeats": len(a)}


def _time(fn, *, warmup: int, repeats: int | None, min_time_s: float, device: str) -> tuple[dict, float | None]:
    for _ in range(warmup):  # compilation, CUDA graph recording (reduce-overhead records on the 3rd call)
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()  # returns host numpy: synchronised
        times.append((time.perf_counter() - t0) * 1e3)
        if repeats is not None and len(times) >= repeats:
            break
        if repeats is None and len(times) >= 20 and (time.perf_counter() - t_start > min_time_s or len(times) >= 1000):
            break
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return _percentiles(times), peak


def run_deploy_bench(*, preset: str | None = None, policy: str = "standin", device: str = "cpu", backends=None, batch: int = 1,
                     image_hw=(480, 640), chunk: int = 16, state_dim: int = 8, action_dim: int = 8,
                     repeats: int | None = None, min_time_s: float = 2.0, json_path=None, compile_backend: str = "inductor",
                     quiet: bool = False) -> list[dict]:
    """Time ``PolicyRuntime.predict`` per backend; returns (and optionally writes) the records.

    ``policy``: ``standin`` (the VLA stand-in of ``preset``) or ``tiny-policy`` (a random tiny
    ``BeingH0Policy`` through the deploy adapter, one camera of ``image_hw``)."""
    from ..deploy.export import export_onnx
    from ..deploy.runtime import PolicyRuntime, available_backends
    from ..deploy.standin import standin_policy

    say = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    cuda = device == "cuda"
    if cuda and not torch.cuda.is_available():
        from ..core.errors import UserValueError

        raise UserValueError("--device cuda: no CUDA GPU here")
    preset = preset or ("1b" if cuda else "tiny")
    dtype = torch.bfloat16 if cuda else torch.float32
    avail = available_backends(device)
    if backends is None:
        backends = ["eager", "compiled", "onnxruntime"]
    if policy == "tiny-policy":
        from ..deploy.policy_adapter import deployable_from_policy
        from .policy import tiny_policy

        say(f"building a random tiny BeingH0Policy on {device}")
        pol = tiny_policy(state_dim=state_dim, action_dim=action_dim, chunk=chunk).eval().to(device)
        module, spec = deployable_from_policy(pol, image_sizes={c: image_hw[::-1] for c in pol.spec.cameras})
        preset, dtype = "tiny-policy", torch.float32
    else:
        say(f"building the {preset} stand-in ({str(dtype).removeprefix('torch.')}, random weights) on {device}")
        module, spec = standin_policy(preset, chunk=chunk, state_dim=state_dim, action_dim=action_dim, dtype=dtype,
                                      device=device)
    params = sum(p.numel() for p in module.parameters())
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (batch, *image_hw, 3), dtype=np.uint8)
    state = rng.normal(size=(batch, state_dim)).astype(np.float32)
    shape = {"policy": preset, "batch": batch, "image": list(image_hw), "tiles": spec.input("pixel_values").shape[1],
             "tile": spec.meta["tile"], "prompt_len": spec.input("input_ids").shape[1], "chunk": chunk,
             "action_dim": action_dim, "params": params}
    records, ref, base_ms = [], None, None
    tmp = tempfile.TemporaryDirectory(prefix="beingh0-bench-deploy-")
    for b in backends:
        rec = {"op": "policy_e2e", "impl": b, "device": device, "dtype": str(dtype).removeprefix("torch."), "shape": shape}
        try:
            if avail.get(b) is not None:
                raise RuntimeError(avail[b])
            if b == "onnxruntime":
                import onnxruntime as ort

                if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise RuntimeError("onnxruntime has no CUDAExecutionProvider here (onnxruntime-gpu not installed)")
                path = Path(tmp.name) / f"{preset}.onnx"
                say(f"exporting {preset} to ONNX for ONNX Runtime")
                export_onnx(module, spec, path, max_batch=max(8, batch), verify=not cuda, allow_tensorrt_refusals=True)
                rt = PolicyRuntime.create("onnxruntime", onnx_path=path, device=device)
            elif b == "tensorrt":
                raise RuntimeError("build an engine with beingh0 export --format tensorrt and time it on the robot PC")
            else:
                rt = PolicyRuntime.create(b, module=module, spec=spec, device=device, compile_backend=compile_backend)
            say(f"timing {rt.describe}")
            out = rt.predict(image, state)
            warm = 5 if b == "compiled" else 2
            pre = []

            def call(rt=rt, pre=pre):
                rt.predict(image, state)
                pre.append(rt.timings["preprocess_ms"])

            r, peak = _time(call, warmup=warm, repeats=repeats, min_time_s=min_time_s, device=device)
            rec.update(r, peak_mem_mb=peak, preprocess_ms=float(np.median(pre[warm:])), runtime=rt.describe)
            if b == "eager":
                ref, base_ms = out, r["median_ms"]
            rec["max_abs_err_vs_reference"] = None if ref is None else float(np.abs(out.astype(np.float64) - ref).max())
            rec["baseline"] = "eager"
            rec["speedup_vs_baseline"] = None if base_ms is None else base_ms / r["median_ms"]
            if cuda and b == "compiled":
                rec["target"] = GPU_TARGET
                rec["meets_target"] = bool(r["p50_ms"] <= GPU_TARGET["p50_ms"] and r["p99_ms"] <= GPU_TARGET["p99_ms"]
                                           and (rec["speedup_vs_baseline"] or 0) >= GPU_TARGET["speedup_vs_eager"])
            say(f"  {b:12s} p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms  (preprocess {rec['preprocess_ms']:.2f} ms)"
                + (f"  {rec['speedup_vs_baseline']:.2f}x eager" if rec["speedup_vs_baseline"] else ""))
        except Exception as e:  # noqa: BLE001 -- one backend failing is a finding, not the end of the run
            rec.update(skipped=f"{type(e).__name__}: {e}"[:300])
            say(f"  {b:12s} skipped: {rec['skipped']}")
        records.append({**rec, **stamp(device)})
    tmp.cleanup()
    if json_path:
        write_records(records, json_path)
        say(f"wrote {json_path}")
    return records


def _main(argv=None) -> None:
    """``python -m beingh0.benchmark.deploy [--device cuda] [--json FILE]`` (until ``beingh0 bench`` wires it)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m beingh0.benchmark.deploy", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--preset", default=None, help="VLA preset of the stand-in (default: tiny on cpu, 1b on cuda)")
    p.add_argument("--policy", choices=["standin", "tiny-policy"], default="standin",
                   help="the VLA stand-in, or a random tiny BeingH0Policy through the deploy adapter")
    p.add_argument("--backends", nargs="+", default=None, help="default: eager compiled onnxruntime")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--min-time", type=float, default=2.0)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    run_deploy_bench(preset=a.preset, policy=a.policy, device=a.device, backends=a.backends, batch=a.batch, repeats=a.repeats,
                     min_time_s=a.min_time, json_path=a.json)


if __name__ == "__main__":
    _main()
