"""``beingh0 bench warp``: the camera-alignment op (warp_align) against OpenCV's official chain and grid_sample."""
from __future__ import annotations


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size takes WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"--size must be positive, got {text!r}")
    return w, h


def _bench_warp(a):
    from ..benchmark.warp import run_warp_bench

    run_warp_bench(device=a.device, sizes=[_size(s) for s in a.size], batches=a.batch, json_path=a.json,
                   backends=a.backends, repeats=a.repeats, threads=a.threads, chain_max_batch=a.chain_max_batch)


def register(sub, bench) -> None:
    s = bench.add_parser(
        "warp", help="warp_align (input -> 448x448 normalised) vs the official 3-pass OpenCV chain and torch grid_sample",
        description="Times warp_align per backend next to two anchors on identical inputs: cv2_chain (the official "
                    "release's resize to 3840x2160, warpPerspective, resize to 448x448, normalise; on the CPU with the "
                    "same thread count) and torch_grid_sample (affine_grid + grid_sample + normalise, same device).")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--size", nargs="+", default=["1920x1080", "3840x2160"], help="input sizes WxH (default: 1920x1080 3840x2160)")
    s.add_argument("--batch", type=int, nargs="+", default=None,
                   help="batch sizes (default: 1 64 on cuda; 1 8 on cpu, since 64 4K frames are 1.6 GB and the CPU anchor "
                        "takes minutes per repeat on a few cores)")
    s.add_argument("--backends", nargs="+", default=None, help="default: cpp on cpu; cuda, triton on cuda (those available)")
    s.add_argument("--threads", type=int, default=None, help="threads for ours, OpenCV and torch (default: OpenMP's)")
    s.add_argument("--chain-max-batch", type=int, default=None,
                   help="run the cv2_chain anchor only up to this batch (default: all on cpu, 8 on cuda)")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default: adaptive)")
    s.add_argument("--json", default=None, help="write the records (ENGINEERING.md section 5) to this JSON file")
    s.set_defaults(fn=_bench_warp)
