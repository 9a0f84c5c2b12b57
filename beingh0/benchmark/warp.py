"""``beingh0 bench warp``: warp_align per backend vs two anchors, side by side, same inputs.

Job: Being-H0's camera alignment of a frame for the model: input W x H uint8 RGB -> 448 x 448
float32, ImageNet-normalised, CHW (ENGINEERING.md section 4). Anchors:

* ``cv2_chain``: the official release's three CPU OpenCV passes per image (resize to 3840x2160,
  warpPerspective with H = K_tgt K_src^-1 into 1920x1080, resize to 448x448), then the normalise
  and HWC -> CHW in numpy. OpenCV gets the same thread count as our kernels (cv2.setNumThreads).
* ``torch_grid_sample``: the plain-torch way on the same device: uint8 -> float, affine_grid +
  grid_sample (bilinear, zero padding, align_corners=False), normalise.

Our ``warp_align`` runs the single composed affine (``official_matrix``), so all three compute the
same image up to interpolation (the chain resamples three times). ``max_abs_err_vs_reference`` is
against our float64 reference on the first image of each batch (for the chain it measures the
interpolation difference of the three passes, not a bug).

Bytes moved (GPU bandwidth floor): outputs + mask + the input bytes the sample points can touch
(at most 4 taps per output pixel, at most the whole image).
"""
from __future__ import annotations

import numpy as np
import torch

from ..ops.warp import IMAGENET_MEAN, IMAGENET_STD, WarpOptions, prepare, resize_matrix, warp_align
from .common import default_backends, set_threads, measured_bandwidth_gbs, print_table, stamp, time_fn, write_records

OUT_HW = (448, 448)
#: Being-H0's target camera on 1920x1080 (105 deg horizontal FOV) and the release's default K_src
#: (fx, fy, cx, cy), which it applies to the frame after forcing it to 3840x2160.
K_TGT = np.array([[736.6339, 0, 960], [0, 736.6339, 540], [0, 0, 1]])
K_SRC_DEFAULT = np.array([[2304.0, 0, 1729], [0, 1942.0, 971], [0, 0, 1]])


def official_matrix(in_wh, K_src=K_SRC_DEFAULT) -> np.ndarray:
    """The official chain as one affine: input -> 3840x2160 -> K_tgt K_src^-1 (1920x1080) -> 448x448."""
    return (resize_matrix((1920, 1080), (OUT_HW[1], OUT_HW[0])).numpy() @ K_TGT @ np.linalg.inv(K_src)
            @ resize_matrix(in_wh, (3840, 2160)).numpy())


def make_inputs(batch: int, wh, device: str, seed: int = 0):
    """The one setup factory: uint8 (B, H, W, 3) noise frames and one (B, 3, 3) matrix per frame."""
    g = torch.Generator().manual_seed(seed)
    W, H = wh
    imgs = torch.randint(0, 256, (batch, H, W, 3), generator=g, dtype=torch.uint8)
    A = torch.as_tensor(official_matrix(wh)).expand(batch, 3, 3).contiguous()
    return imgs.to(device), A


def cv2_chain_fn(imgs_np: np.ndarray, K_src=K_SRC_DEFAULT):
    try:
        import cv2
    except ImportError:
        raise RuntimeError("the warp benchmark's cv2_chain anchor needs OpenCV: pip install opencv-python-headless") from None
    Hm = K_TGT @ np.linalg.inv(K_src)
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)

    def run():
        out = np.empty((len(imgs_np), 3, *OUT_HW), np.float32)
        for i, im in enumerate(imgs_np):
            x = cv2.resize(im, (3840, 2160))
            x = cv2.warpPerspective(x, Hm, (1920, 1080), borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            x = cv2.resize(x, (OUT_HW[1], OUT_HW[0]))
            out[i] = ((x.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)
        return out

    return run


def grid_sample_fn(imgs: torch.Tensor, A: torch.Tensor):
    """affine_grid + grid_sample + normalise; theta built once (setup, not timed)."""
    B, H, W, C = imgs.shape
    h, w = OUT_HW
    params = prepare(imgs, A, WarpOptions(OUT_HW, mean=None, std=None), check=False, op="bench").params
    M = torch.cat([params[:, :6].reshape(B, 2, 3), params.new_tensor([0, 0, 1.0]).expand(B, 1, 3)], 1)
    to_norm = lambda n: torch.tensor([[2.0 / n[0], 0, 1.0 / n[0] - 1], [0, 2.0 / n[1], 1.0 / n[1] - 1], [0, 0, 1]],
                                     dtype=torch.float64)
    theta = (to_norm((W, H)) @ M.cpu() @ torch.linalg.inv(to_norm((w, h))))[:, :2].float().to(imgs.device)
    mean = torch.tensor(IMAGENET_MEAN, device=imgs.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=imgs.device).view(1, 3, 1, 1)
    F = torch.nn.functional

    def run():
        x = imgs.permute(0, 3, 1, 2).float()
        grid = F.affine_grid(theta, [B, C, h, w], align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return (y / 255.0 - mean) / std

    return run


def _bytes(B, H, W, C, out_itemsize=4):
    h, w = OUT_HW
    return float(B * (C * h * w * out_itemsize + h * w + min(H * W * C, 4 * C * h * w)))


def run_warp_bench(device: str = "cpu", sizes=((1920, 1080), (3840, 2160)), batches=None, json_path=None, backends=None,
                   repeats=None, threads: int | None = None, chain_max_batch: int | None = None,
                   quiet: bool = False) -> list[dict]:
    """Time warp_align per backend and both anchors; one record per (impl, size, batch).

    batches default: (1, 64) on CUDA; (1, 8) on CPU (64 frames of 4K are 1.6 GB of input, and the
    CPU anchor would need minutes per repeat on 2 cores). ``chain_max_batch``: run cv2_chain only up
    to this batch (default: all on CPU, 8 on CUDA), its speedup is then per image.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is visible to torch")
    if batches is None:
        batches = (1, 64) if device == "cuda" else (1, 8)
    if chain_max_batch is None:
        chain_max_batch = 8 if device == "cuda" else max(batches)
    if backends is None:
        backends = default_backends(device)
    import cv2

    n_threads = set_threads(threads)
    cv2.setNumThreads(n_threads)
    bw = measured_bandwidth_gbs(device)
    meta = stamp(device)
    meta["threads"] = n_threads
    records = []
    from tqdm.auto import tqdm

    cases = [(wh, b) for wh in sizes for b in batches]
    for wh, batch in tqdm(cases, desc="warp bench", disable=quiet):
        imgs, A = make_inputs(batch, wh, device)
        W, H = wh
        shape = [batch, H, W, 3]
        with torch.no_grad():
            ref = warp_align(imgs[:1].cpu(), A[:1], OUT_HW, backend="reference", out_dtype=torch.float64,
                             return_mask=False).image
        err = lambda out: float((torch.as_tensor(out[:1]).to("cpu", torch.float64) - ref).abs().max())
        base = {}
        if batch <= chain_max_batch:
            run = cv2_chain_fn(imgs.cpu().numpy())
            t = time_fn(run, "cpu", repeats=repeats)
            base["cv2_chain"] = t["median_ms"] / batch
            records.append(dict(op="warp_align", impl="cv2_chain", device="cpu", dtype="float32", shape=shape,
                                out_shape=[batch, 3, *OUT_HW], **t, ms_per_image=t["median_ms"] / batch,
                                max_abs_err_vs_reference=err(run()), baseline="cv2_chain", speedup_vs_baseline=1.0,
                                **meta))
        run = grid_sample_fn(imgs, A)
        with torch.no_grad():
            t = time_fn(run, device, repeats=repeats)
            e = err(run())
        base["torch_grid_sample"] = t["median_ms"] / batch
        records.append(dict(op="warp_align", impl="torch_grid_sample", device=device, dtype="float32", shape=shape,
                            out_shape=[batch, 3, *OUT_HW], **t, ms_per_image=t["median_ms"] / batch,
                            max_abs_err_vs_reference=e, baseline="torch_grid_sample", speedup_vs_baseline=1.0,
                            **({"speedup_vs_cv2_chain": base["cv2_chain"] / base["torch_grid_sample"]}
                               if "cv2_chain" in base else {}), **meta))
        for b in backends:
            fn = lambda: warp_align(imgs, A, OUT_HW, backend=b, check=False)
            with torch.no_grad():
                t = time_fn(fn, device, repeats=repeats)
                e = err(fn().image)
            per = t["median_ms"] / batch
            main = "cv2_chain" if device == "cpu" and "cv2_chain" in base else "torch_grid_sample"
            nbytes = _bytes(batch, H, W, 3)
            rec = dict(op="warp_align", impl=b, device=device, dtype="float32", shape=shape,
                       out_shape=[batch, 3, *OUT_HW], **t, ms_per_image=per, max_abs_err_vs_reference=e,
                       baseline=main, speedup_vs_baseline=base[main] / per,
                       **{f"speedup_vs_{k}": v / per for k, v in base.items()}, bytes=nbytes, **meta)
            if bw:
                rec["bandwidth_floor_ms"] = nbytes / (bw * 1e9) * 1e3
                rec["fraction_of_bandwidth_floor"] = rec["bandwidth_floor_ms"] / t["median_ms"]
                rec["measured_copy_bandwidth_gbs"] = bw
            records.append(rec)
        del imgs
    if not quiet:
        print(f"device: {meta['device_name']}, {n_threads} threads for ours, OpenCV and torch "
              "(speedup = anchor ms per image / ours, same inputs, same run; input -> 448x448 float32)")
        print_table(records)
        for r in records:
            if r["impl"] not in ("cv2_chain", "torch_grid_sample"):
                extra = ", ".join(f"{k[11:]} {v:.1f}x" for k, v in r.items() if k.startswith("speedup_vs_") and k != "speedup_vs_baseline")
                print(f"  {r['impl']:8s} {r['shape']}: {r['ms_per_image']:.3f} ms/image; {extra}")
    if json_path:
        write_records(records, json_path)
        if not quiet:
            print(f"wrote {json_path}")
    return records
