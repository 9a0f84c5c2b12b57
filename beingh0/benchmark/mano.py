"""``beingh0 bench mano``: mano_forward / mano_joints per backend vs smplx's MANO layer, same run.

Inputs are identical for every provider (one setup factory). smplx (the anchor) is given the same
model file (the embedded hand written in MANO's pickle layout), ``flat_hand_mean=True``, no PCA,
and the same betas/pose/transl. ``mano_joints`` is compared with smplx's *full* forward, since
smplx has no keypoint-only path. Errors are vs our float64 reference on the first 256 samples.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..core.constants import NUM_KEYPOINTS, NUM_POSE_FEATS
from ..core.errors import UserValueError
from ..mano.model import ManoModel
from ..ops.backend import Backend
from ..ops.mano import mano_forward, mano_joints
from .common import default_backends, measured_bandwidth_gbs, print_table, stamp, time_fn, write_records

ERR_SAMPLES = 256


def make_inputs(batch: int, device: str, dtype=torch.float32, seed: int = 0, shared_betas: bool = True):
    """The one setup factory: betas (1 or B, 10), pose (B, 48) ~ N(0, 0.5 rad), trans (B, 3)."""
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(1 if shared_betas else batch, 10, generator=g)
    pose = 0.5 * torch.randn(batch, 48, generator=g)
    trans = 0.1 * torch.randn(batch, 3, generator=g)
    return [t.to(device=device, dtype=dtype) for t in (betas, pose, trans)]


def smplx_layer(model: ManoModel, device: str, batch: int):
    """smplx's MANO layer on the same model file (raises with an install hint if smplx is missing)."""
    try:
        import smplx
    except ImportError:
        raise RuntimeError("the mano benchmark's baseline is smplx: pip install smplx (a test/bench-only dependency)") from None
    from ..mano.embedded import write_mano_pickle

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"MANO_{model.side.upper()}.pkl"
        write_mano_pickle(model.arrays(), path)
        layer = smplx.create(str(path), model_type="mano", use_pca=False, is_rhand=model.side == "right",
                             flat_hand_mean=True, batch_size=batch)
    return layer.to(device)


def _flops_bytes(op: str, batch: int, V: int, shared: bool, itemsize: int) -> tuple[float, float]:
    """Rough FLOPs (multiply-add = 2) and the minimal bytes moved (inputs + outputs, constants once)."""
    nv = V if op == "mano_forward" else 5
    per_vert = 2 * (3 * NUM_POSE_FEATS + 16 * 12 + 9 + 3) + (0 if shared else 2 * 3 * 10)
    per_sample = nv * per_vert + 16 * (60 + 27 + 36)  # + rodrigues and 3x4 chain products
    inputs = batch * (48 + 3 + (0 if shared else 10)) * itemsize
    outputs = batch * ((V * 3 if op == "mano_forward" else 0) + NUM_KEYPOINTS * 3) * itemsize
    consts = nv * (3 + 3 * 10 + 3 * NUM_POSE_FEATS + 16) * 4
    return float(batch * per_sample), float(inputs + outputs + consts)


def _run_ours(op, model, betas, pose, trans, backend):
    c = model.constants(pose.device, pose.dtype, tips_only=op == "mano_joints")
    if op == "mano_forward":
        return lambda: mano_forward(betas, pose, trans, c, backend=backend, check=False)
    return lambda: mano_joints(betas, pose, trans, c, backend=backend, check=False)


def _setup(device: str, model: ManoModel | None, backends) -> tuple[ManoModel, list[str]]:
    """(the hand model, the backends to time: the reference and ``default_backends``) for a run on ``device``."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserValueError("--device cuda: no CUDA GPU is visible to torch; run on a GPU machine or use --device cpu")
    if backends is None:
        backends = [Backend.REFERENCE.value, *default_backends(device)]
    return model or ManoModel.embedded("right"), backends


def run_mano_bench(device: str = "cpu", batches=(1, 1024, 65536), json_path=None, backends=None, repeats=None,
                   ops=("mano_forward", "mano_joints"), model: ManoModel | None = None, quiet: bool = False) -> list[dict]:
    model, backends = _setup(device, model, backends)
    bw = measured_bandwidth_gbs(device)
    meta = stamp(device)
    model = model.to(device)
    model_smplx = ManoModel(model.arrays(), model.side, trans_mode="smplx").to(device)  # smplx's transl convention
    records = []
    for batch in batches:
        betas, pose, trans = make_inputs(batch, device)
        layer = smplx_layer(model, device, batch)
        run_smplx = lambda: layer(betas=betas.expand(batch, -1), global_orient=pose[:, :3], hand_pose=pose[:, 3:],
                                  transl=trans)
        n = min(batch, ERR_SAMPLES)
        with torch.no_grad():
            base_t = time_fn(run_smplx, device, repeats=repeats)
            ref64 = model(betas.double(), pose[:n, :3].double(), pose[:n, 3:].double(), trans[:n].double(),
                          backend="reference")
            # the anchor's own error: our smplx-mode float64 mesh vs smplx's, same inputs
            v_ours = model_smplx(betas.double(), pose[:n, :3].double(), pose[:n, 3:].double(), trans[:n].double(),
                                 backend="reference").vertices
            smplx_err = (run_smplx().vertices[:n].double() - v_ours).abs().max().item()
        records.append(dict(op="mano_forward", impl="smplx", device=device, dtype="float32", shape=[batch, 778, 3],
                            **base_t, max_abs_err_vs_reference=smplx_err, baseline="smplx", speedup_vs_baseline=1.0,
                            **meta))
        for op in ops:
            for b in backends:
                fn = _run_ours(op, model, betas, pose, trans, b)
                with torch.no_grad():
                    t = time_fn(fn, device, repeats=repeats)
                    out = fn()
                got = out[1] if op == "mano_forward" else out
                err = (got[:n].double() - ref64.keypoints).abs().max().item()
                if op == "mano_forward":
                    err = max(err, (out[0][:n].double() - ref64.vertices).abs().max().item())
                flops, nbytes = _flops_bytes(op, batch, 778, True, 4)
                rec = dict(op=op, impl=b, device=device, dtype="float32",
                           shape=[batch, 778, 3] if op == "mano_forward" else [batch, NUM_KEYPOINTS, 3], **t,
                           max_abs_err_vs_reference=err, baseline="smplx",
                           speedup_vs_baseline=base_t["median_ms"] / t["median_ms"], flops=flops, bytes=nbytes,
                           gflops_per_s=flops / (t["median_ms"] * 1e6), **meta)
                if bw:
                    rec["bandwidth_floor_ms"] = nbytes / (bw * 1e9) * 1e3
                    rec["fraction_of_bandwidth_floor"] = rec["bandwidth_floor_ms"] / t["median_ms"]
                    rec["measured_copy_bandwidth_gbs"] = bw
                records.append(rec)
    if not quiet:
        print(f"device: {meta['device_name']}  (speedup = smplx median / ours median, same inputs, same run)")
        print_table(records)
    if json_path:
        write_records(records, json_path)
        if not quiet:
            print(f"wrote {json_path}")
    return records


# ----------------------------------------------------------------------------------------------
# forward + backward (training): ours vs smplx autograd


BACKWARD_OPS = ("mano_forward_backward", "mano_forward_backward_kp", "mano_joints_backward")
"""``mano_forward_backward``: loss on vertices and keypoints; ``..._kp``: ``mano_forward`` with a loss on
the keypoints alone (the keypoint-only backward kernel, since the vertex gradient is absent);
``mano_joints_backward``: ``mano_joints`` (5 fingertip vertices) and its backward."""


def _loss_weights(batch: int, device: str, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 778, 3, generator=g).to(device), torch.randn(batch, NUM_KEYPOINTS, 3, generator=g).to(device))


def _fwd_bwd(op, model, betas, pose, trans, backend, wv, wk):
    """A closure running forward + backward of ``op`` (float32 leaves) and returning the gradients."""
    c = model.constants(pose.device, pose.dtype if pose.dtype == torch.float64 else torch.float32,
                        tips_only=op == "mano_joints_backward")
    x = [t.detach().clone().requires_grad_() for t in (betas, pose, trans)]

    def run():
        if op == "mano_joints_backward":
            loss = (mano_joints(*x, c, backend=backend, check=False) * wk).sum()
        else:
            v, k = mano_forward(*x, c, backend=backend, check=False)
            loss = (k * wk).sum() if op == "mano_forward_backward_kp" else (v * wv).sum() + (k * wk).sum()
        return torch.autograd.grad(loss, x)
    return run


def run_mano_backward_bench(device: str = "cpu", batches=(1, 1024, 16384), json_path=None, backends=None,
                            repeats=None, ops=BACKWARD_OPS, model: ManoModel | None = None,
                            quiet: bool = False) -> list[dict]:
    """Forward + backward per backend vs smplx with autograd (loss on its vertices; it has no
    keypoint-only path), same inputs, same run. Each record also carries the forward alone
    (``forward_ms``) and ``backward_over_forward`` = (fwd+bwd - fwd) / fwd; errors are the largest
    gradient difference from our float64 reference (first 256 samples)."""
    model, backends = _setup(device, model, backends)
    meta = stamp(device)
    model = model.to(device)
    records = []
    for batch in batches:
        betas, pose, trans = make_inputs(batch, device)
        wv, wk = _loss_weights(batch, device)
        layer = smplx_layer(model, device, batch)
        xs = [t.detach().clone().requires_grad_() for t in (betas.expand(batch, -1), pose, trans)]

        def run_smplx():
            out = layer(betas=xs[0], global_orient=xs[1][:, :3], hand_pose=xs[1][:, 3:], transl=xs[2])
            return torch.autograd.grad((out.vertices * wv).sum(), xs)
        base_t = time_fn(run_smplx, device, repeats=repeats)
        records.append(dict(op="mano_forward_backward", impl="smplx", device=device, dtype="float32",
                            shape=[batch, 778, 3], **base_t, max_abs_err_vs_reference=None, baseline="smplx",
                            speedup_vs_baseline=1.0, **meta))
        n = min(batch, ERR_SAMPLES)
        for op in ops:
            sl = [betas, pose[:n], trans[:n]]
            ref = _fwd_bwd(op, model, *[t.double() for t in sl], "reference", wv[:n].double(), wk[:n].double())()
            for b in backends:
                fwd_op = "mano_joints" if op == "mano_joints_backward" else "mano_forward"
                fwd = _run_ours(fwd_op, model, betas, pose, trans, b)
                with torch.no_grad():
                    t_fwd = time_fn(fwd, device, repeats=repeats)
                t = time_fn(_fwd_bwd(op, model, betas, pose, trans, b, wv, wk), device, repeats=repeats)
                got = _fwd_bwd(op, model, *sl, b, wv[:n], wk[:n])()
                err = max((g.double() - r).abs().max().item() for g, r in zip(got, ref))
                records.append(dict(op=op, impl=b, device=device, dtype="float32",
                                    shape=[batch, 778 if op != "mano_joints_backward" else NUM_KEYPOINTS, 3], **t,
                                    max_abs_err_vs_reference=err, baseline="smplx",
                                    speedup_vs_baseline=base_t["median_ms"] / t["median_ms"],
                                    forward_ms=t_fwd["median_ms"],
                                    backward_over_forward=(t["median_ms"] - t_fwd["median_ms"]) / t_fwd["median_ms"],
                                    **meta))
    if not quiet:
        print(f"device: {meta['device_name']}  (forward + backward; speedup = smplx autograd median / ours median, "
              f"same inputs, same run; max err = largest gradient difference from the float64 reference)")
        print_table(records)
        for r in records:
            if "backward_over_forward" in r:
                print(f"  {r['op']:26s} {r['impl']:10s} B={r['shape'][0]:<6d} backward / forward = "
                      f"{r['backward_over_forward']:.2f}")
    if json_path:
        write_records(records, json_path)
        if not quiet:
            print(f"wrote {json_path}")
    return records
