"""The jobs behind ``beingh0 export`` and ``beingh0 serve`` (the CLI only parses flags)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from ..core.errors import UserValueError

__all__ = ["export_command", "make_runtime", "serve_command", "simulate_command", "warmup"]


class _Progress:
    """Stage lines with elapsed time on stderr (the export's stages take seconds to minutes)."""

    def __init__(self, quiet: bool = False):
        self.t0, self.quiet = time.perf_counter(), quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def export_command(policy: str, fmt: str, out, *, max_batch: int = 8, opt_batch: int = 1, precision: str = "fp16",
                   timing_cache=None, device: str = "cpu", verify: bool = True, quiet: bool = False,
                   allow_tensorrt_refusals: bool = False, image_sizes: dict | None = None,
                   instruction: str | None = None) -> dict:
    """Export ``policy`` (checkpoint folder or ``standin[:PRESET]``) to ONNX or a TensorRT engine; prints
    a summary (size, ops, TensorRT coverage, ONNX Runtime error) and returns it as a dict."""
    from .export import export_onnx
    from .runtime import load_policy_source

    say = _Progress(quiet)
    out = Path(out)
    if fmt not in ("onnx", "tensorrt"):
        raise UserValueError(f"--format must be onnx or tensorrt, got {fmt!r}")
    if fmt == "tensorrt":
        from .tensorrt import require_tensorrt

        require_tensorrt()  # before minutes of export
    say(f"loading policy {policy}")
    module, spec = load_policy_source(policy, device=device, image_sizes=image_sizes, instruction=instruction)
    onnx_path = out if fmt == "onnx" else out.with_suffix(".onnx")
    if allow_tensorrt_refusals and fmt == "tensorrt":
        raise UserValueError("--allow-tensorrt-refusals is for --format onnx (ONNX Runtime); TensorRT would refuse the graph")
    rep = export_onnx(module, spec, onnx_path, max_batch=max_batch, verify=verify, progress=say,
                      allow_tensorrt_refusals=allow_tensorrt_refusals)
    summary = {"onnx": str(onnx_path), "bytes": rep.bytes, "nodes": rep.nodes, "op_types": rep.op_types,
               "tensorrt_coverage": rep.coverage.summary() if rep.coverage else None,
               "ort_max_abs_err": rep.ort_max_abs_err, "ort_ok": rep.ort_ok}
    lines = [rep.summary()]
    if fmt == "tensorrt":
        from .tensorrt import build_engine

        head = build_engine(onnx_path, out, precision=precision, max_batch=max_batch, opt_batch=opt_batch,
                            timing_cache=timing_cache, progress=say)
        summary.update(engine=str(out), engine_bytes=out.stat().st_size, precision=precision,
                       tensorrt=head["versions"]["tensorrt"])
        lines.append(f"{out}: TensorRT {head['versions']['tensorrt']} {precision} engine, "
                     f"{out.stat().st_size / 2**20:.2f} MiB, batch 1..{max_batch}")
    say("done")
    print("\n".join(lines))
    return summary


def parse_image_sizes(items) -> dict | None:
    """``["cam_high=640x480", "wrist=320x240"]`` -> ``{"cam_high": (640, 480), ...}``."""
    if not items:
        return None
    out = {}
    for it in items:
        cam, sep, size = it.rpartition("=")
        try:
            w, h = (int(v) for v in size.lower().split("x"))
            if not sep or not cam or w <= 0 or h <= 0:
                raise ValueError
        except ValueError:
            raise UserValueError(f"--image-size takes CAMERA=WIDTHxHEIGHT, e.g. cam_high=640x480, got {it!r}") from None
        out[cam] = (w, h)
    return out


def make_runtime(policy: str, runtime: str | None = None, *, device: str = "cpu", image_sizes: dict | None = None,
                 instruction: str | None = None):
    """A PolicyRuntime from what the user named: ``.onnx`` -> onnxruntime, ``.engine`` -> tensorrt, a
    checkpoint folder or ``standin[:PRESET]`` -> eager (or ``runtime``)."""
    from .runtime import PolicyRuntime, load_policy_source

    p = Path(policy)
    kind = "onnx" if p.suffix == ".onnx" else "engine" if p.suffix == ".engine" else "torch"
    runtime = runtime or {"onnx": "onnxruntime", "engine": "tensorrt", "torch": "eager"}[kind]
    if kind != "torch" and not p.is_file():
        raise UserValueError(f"{policy} does not exist; export it first with beingh0 export")
    if runtime == "onnxruntime":
        if kind != "onnx":
            raise UserValueError("--runtime onnxruntime serves an exported .onnx file; pass it as POLICY")
        return PolicyRuntime.create("onnxruntime", onnx_path=p, device=device)
    if runtime == "tensorrt":
        if kind != "engine":
            raise UserValueError("--runtime tensorrt serves a .engine file (beingh0 export --format tensorrt)")
        return PolicyRuntime.create("tensorrt", engine_path=p, device=device)
    if kind != "torch":
        raise UserValueError(f"--runtime {runtime} runs the torch policy: pass its checkpoint folder or 'standin'")
    module, spec = load_policy_source(policy, device=device, image_sizes=image_sizes, instruction=instruction)
    return PolicyRuntime.create(runtime, module=module, spec=spec, device=device)


def warmup(rt, repeats: int = 3) -> None:
    """A few calls on blank inputs of the expected sizes (first-call allocations, kernels, CUDA graphs),
    so the first client does not wait for them."""
    cams = rt.spec.meta.get("cameras")
    if cams:
        image = {c["name"]: np.zeros((c["height"], c["width"], 3), np.uint8) for c in cams}
        if len(cams) == 1:
            image = image[cams[0]["name"]]
    else:
        image = np.zeros((480, 640, 3), np.uint8)
    state = np.zeros(rt.spec.input("state").shape[-1], np.float32)
    for _ in range(repeats):
        rt.predict(image, state)


def serve_command(policy: str, runtime: str | None = None, *, host: str = "127.0.0.1", port: int = 8765,
                  token: str | None = None, device: str = "cpu", max_batch: int = 8, image_sizes: dict | None = None,
                  instruction: str | None = None) -> None:
    from .server import PolicyServer

    token = token or os.environ.get("BEINGH0_TOKEN") or None
    rt = make_runtime(policy, runtime, device=device, image_sizes=image_sizes, instruction=instruction)
    t0 = time.perf_counter()
    warmup(rt)
    print(f"warmed up {rt.describe} in {time.perf_counter() - t0:.1f} s", flush=True)
    srv = PolicyServer(rt, host=host, port=port, token=token, max_batch=max_batch)
    srv.start()
    print(f"serving {policy} ({rt.describe}) on {host}:{srv.port}; token {'required' if token else 'NOT set (loopback only)'}; "
          "Ctrl-C stops", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        srv.stop()
        raise


def simulate_command(policy: str | None, runtime: str | None = None, *, steps: int = 200, dt: float = 0.02,
                     replan_every: int | None = None, deadline_ms: float | None = None, connect: str | None = None,
                     token: str | None = None, png=None, device: str = "cpu", json_path=None,
                     image_sizes: dict | None = None, instruction: str | None = None) -> dict:
    """The control loop against the simulated robot with a local runtime or a server (``connect``
    ``HOST:PORT``); prints the latency statistics, optionally writes the timeline PNG."""
    from .control import ControlLoop, JointLimits, SimulatedRobot

    if connect:
        from .client import PolicyClient

        host, _, port = connect.rpartition(":")
        if not host or not port.isdigit():
            raise UserValueError(f"--connect takes HOST:PORT, got {connect!r}")
        client = PolicyClient(host, int(port), token=token or os.environ.get("BEINGH0_TOKEN"),
                              timeout_s=max(1.0, 10 * (replan_every or 4) * dt))
        spec_meta = client.metadata()["spec"]
        from .spec import PolicySpec

        spec = PolicySpec.from_dict(spec_meta)
        fn, desc = client.infer, f"server {connect}"
    else:
        rt = make_runtime(policy, runtime, device=device, image_sizes=image_sizes, instruction=instruction)
        spec, fn, desc = rt.spec, rt.predict, rt.describe
    n = spec.outputs[0].shape[-1]
    if replan_every is None:  # half a chunk: the next chunk has half a chunk's time to arrive
        replan_every = max(1, spec.outputs[0].shape[-2] // 2)
    if spec.input("state").shape[-1] != n:
        raise UserValueError("the simulated robot needs state_dim == action_dim (joint positions in, joint targets out)")
    limits = JointLimits.uniform(n, -1.5, 1.5, max_velocity=3.0)
    cams = spec.meta.get("cameras") or []
    if len(cams) > 1:
        raise UserValueError("--simulate drives a one-camera robot; this policy has cameras "
                             f"{[c['name'] for c in cams]}")
    hw = (int(cams[0]["height"]), int(cams[0]["width"])) if cams else (120, 160)
    robot = SimulatedRobot(limits, dt, latency_steps=1, image_hw=hw)
    fn(*robot.observe())  # warm-up (compilation, first-call allocations) outside the timed loop
    fn(*robot.observe())
    log = ControlLoop(fn, robot, limits, dt=dt, replan_every=replan_every,
                      deadline_s=None if deadline_ms is None else deadline_ms / 1e3).run(steps)
    s = log.stats()
    print(f"control loop with {desc}: {s['steps']} steps of {dt * 1e3:.0f} ms, {s['inferences']} inferences, "
          f"p50 {s['inference_ms_p50']:.1f} ms, p99 {s['inference_ms_p99']:.1f} ms, {s['late_inferences']} late, "
          f"{s['held_steps']} held, {s['clipped_steps']} clipped, {s['overruns']} overruns")
    if png:
        log.plot(png)
        print(f"timeline: {png}")
    if json_path:
        import json

        Path(json_path).write_text(json.dumps(s, indent=1))
    return s
