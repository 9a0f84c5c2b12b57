"""``PolicyRuntime``: one policy, interchangeable inference backends, the same inputs and outputs.

=============  =============================================================================
backend        what runs the policy core
=============  =============================================================================
eager          the torch module, ``torch.inference_mode``
compiled       ``torch.compile`` of it; on a GPU ``mode="reduce-overhead"`` (CUDA graphs)
onnxruntime    an exported ONNX file in ONNX Runtime (CUDA provider on a GPU when present)
tensorrt       a TensorRT engine file (:mod:`.tensorrt`; where ``tensorrt`` imports)
=============  =============================================================================

Around every backend the runtime does the same pre- and post-processing: the camera image (uint8
H x W x 3, any size) becomes the spec's tiles with :func:`beingh0.ops.warp_align` (one resample per
tile, ImageNet normalisation, on the runtime's device), the state is normalised and the action
chunk de-normalised with the spec's statistics; the prompt's token ids default to
``spec.meta['prompt_ids']``. :meth:`PolicyRuntime.predict` is image + state in, action chunk out.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserValueError
from .spec import PolicySpec

__all__ = ["BACKENDS", "PolicyRuntime", "available_backends", "load_policy_source"]

BACKENDS = ("eager", "compiled", "onnxruntime", "tensorrt")


def available_backends(device: str = "cpu") -> dict[str, str | None]:
    """{backend: None if it can run here, else why not}."""
    out: dict[str, str | None] = {"eager": None, "compiled": None}
    try:
        import onnxruntime as ort

        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            out["onnxruntime"] = None  # falls back to the CPU provider (said in describe())
        else:
            out["onnxruntime"] = None
    except ImportError:
        out["onnxruntime"] = 'onnxruntime is not installed (pip install onnxruntime)'
    try:
        import tensorrt  # noqa: F401

        out["tensorrt"] = None if device == "cuda" else "TensorRT runs on CUDA only"
    except ImportError:
        out["tensorrt"] = "tensorrt does not import here (NVIDIA's wheel; robot PC only)"
    return out


def load_policy_source(source: str, *, device=None, dtype=None, image_sizes: dict | None = None,
                       instruction: str | None = None):
    """(module, spec) of a deployable policy.

    ``source``: ``standin`` / ``standin:PRESET`` (the random stand-in of :mod:`.standin`), or a
    policy folder ``beingh0 posttrain`` wrote (:mod:`.policy_adapter`: its tensor-only ``forward_core``;
    ``image_sizes`` ``{camera: (width, height)}`` and ``instruction`` fix what the deployment needs).
    """
    if source == "standin" or source.startswith("standin:"):
        from .standin import standin_policy

        preset = source.partition(":")[2] or "tiny"
        return standin_policy(preset, device=device, dtype=dtype or torch.float32)
    path = Path(source)
    if not path.is_dir():
        raise UserValueError(f"policy {source!r} is neither a checkpoint folder nor 'standin[:PRESET]'; pass the folder "
                             "a policy training wrote")
    from .policy_adapter import load_policy_folder

    return load_policy_folder(path, device=device, dtype=dtype, image_sizes=image_sizes, instruction=instruction)


class PolicyRuntime:
    """A policy behind one backend; see the module docstring.

    Build with :meth:`create`; call :meth:`infer` with the core's tensors (normalised, tiled) or
    :meth:`predict` with a camera image and a raw state.
    """

    def __init__(self, spec: PolicySpec, backend: str, run, device: str = "cpu", describe: str = ""):
        self.spec, self.backend, self._run, self.device = spec, backend, run, torch.device(device)
        self.describe = describe or backend
        m = spec.meta
        self._tile = int(m.get("tile", 0))
        self._grid = tuple(m.get("grid", (1, 1)))
        self._thumb = bool(m.get("thumbnail", False))
        self._mats: dict[tuple[int, int], torch.Tensor] = {}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, backend: str, *, module: torch.nn.Module | None = None, spec: PolicySpec | None = None,
               onnx_path=None, engine_path=None, device: str = "cpu", compile_mode: str | None = None,
               compile_backend: str = "inductor") -> PolicyRuntime:
        """A runtime of ``backend``: eager/compiled need ``module`` and ``spec``; onnxruntime an ONNX file
        (spec from its metadata); tensorrt an engine file (spec from its header). ``compile_backend``:
        torch.compile's backend (tests on CPU use ``aot_eager``: inductor's C++ build of the tiny VLA
        takes minutes on 2 cores)."""
        if backend not in BACKENDS:
            raise UserValueError(f"unknown runtime {backend!r}; choose one of {', '.join(BACKENDS)}")
        if backend in ("eager", "compiled"):
            if module is None or spec is None:
                raise UserValueError(f"runtime {backend} needs the torch policy (a checkpoint folder or 'standin')")
            module = module.to(device).eval()
            fn = module
            desc = f"torch eager on {device}"
            if backend == "compiled":
                mode = compile_mode or ("reduce-overhead" if str(device).startswith("cuda") else None)
                fn = torch.compile(module, mode=mode if compile_backend == "inductor" else None,
                                   backend=compile_backend, dynamic=False, fullgraph=False)
                desc = f"torch.compile ({compile_backend}, mode={mode or 'default'}{', CUDA graphs' if mode == 'reduce-overhead' else ''}) on {device}"

            names = spec.input_names

            def run(inputs: dict) -> torch.Tensor:
                with torch.inference_mode():
                    y = fn(*(inputs[n] for n in names))
                    # CUDA graphs reuse their output buffer: copy before the next replay
                    return y.clone() if backend == "compiled" else y

            return cls(spec, backend, run, device, desc)
        if backend == "onnxruntime":
            import onnxruntime as ort

            from .export import read_onnx_spec

            if onnx_path is None:
                raise UserValueError("runtime onnxruntime needs an exported .onnx file (beingh0 export --format onnx)")
            spec = read_onnx_spec(onnx_path)
            providers = ["CPUExecutionProvider"]
            if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(str(onnx_path), so, providers=providers)
            out_name = spec.output_name
            on_gpu = providers[0] == "CUDAExecutionProvider"
            np_types = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64,
                        torch.int32: np.int32, torch.uint8: np.uint8, torch.bool: np.bool_}

            def run(inputs: dict) -> torch.Tensor:
                if not on_gpu:
                    feeds = {k: v.detach().cpu().numpy() for k, v in inputs.items()}
                    return torch.from_numpy(sess.run([out_name], feeds)[0])
                # CUDA provider: bind the device tensors (the tiles warp_align made on the GPU) in place
                torch.cuda.current_stream().synchronize()  # ORT runs on its own stream
                io = sess.io_binding()
                keep = []
                for k, v in inputs.items():
                    v = v.to(device).contiguous()
                    keep.append(v)
                    io.bind_input(k, "cuda", v.device.index or 0, np_types[v.dtype], tuple(v.shape), v.data_ptr())
                io.bind_output(out_name, "cuda")
                sess.run_with_iobinding(io)
                return torch.from_numpy(io.copy_outputs_to_cpu()[0])

            return cls(spec, backend, run, "cpu" if providers[0].startswith("CPU") else device,
                       f"ONNX Runtime {ort.__version__} ({providers[0]})")
        # tensorrt
        from .tensorrt import TensorRTEngine

        if engine_path is None:
            raise UserValueError("runtime tensorrt needs an engine file (beingh0 export --format tensorrt)")
        eng = TensorRTEngine(engine_path, device if str(device).startswith("cuda") else "cuda")
        return cls(eng.spec, backend, eng, str(eng.device), f"TensorRT {eng.header['versions']['tensorrt']} "
                                                           f"({eng.header['precision']})")

    # ------------------------------------------------------------------ inference
    def infer(self, inputs: dict) -> np.ndarray:
        """The core's output (B, chunk, action_dim) float32 for already prepared tensors."""
        missing = [n for n in self.spec.input_names if n not in inputs]
        if missing:
            raise UserValueError(f"missing policy inputs {missing}; expected {self.spec.input_names}")
        y = self._run({n: torch.as_tensor(inputs[n]).to(self.device) for n in self.spec.input_names})
        return y.float().cpu().numpy()

    def tiles(self, images: torch.Tensor, camera: dict | None = None) -> torch.Tensor:
        """(B, tiles, 3, t, t) float32 tiles of uint8 (B, H, W, 3) images: one ``warp_align`` per tile.

        ``camera``: an entry of ``spec.meta['cameras']`` (its ``matrices``, for its ``width x height``
        images: e.g. the policy's alignment to the virtual camera folded in); None: the fixed ``grid``
        of ``spec.meta`` for images of any size."""
        from ..ops.warp import warp_align
        from ..vla.tiling import tile_matrices

        if not self._tile:
            raise UserValueError("the policy spec has no meta['tile']; it cannot take camera images")
        H, W = int(images.shape[1]), int(images.shape[2])
        key = (camera["name"] if camera else None, W, H)
        mats = self._mats.get(key)
        if mats is None:
            if camera is not None:
                if (W, H) != (int(camera["width"]), int(camera["height"])):
                    raise UserValueError(f"camera {camera['name']}: the policy takes {camera['width']}x{camera['height']} "
                                         f"images, got {W}x{H}")
                mats = torch.tensor(camera["matrices"], dtype=torch.float64)
            else:
                mats = tile_matrices(W, H, self._grid, self._tile, self._thumb)
            mats = self._mats[key] = mats.to(images.device)
        t = self._tile
        return torch.stack([warp_align(images, m, (t, t), return_mask=False).image for m in mats], dim=1)

    def _as_images(self, image, name: str) -> torch.Tensor:
        img = torch.as_tensor(np.ascontiguousarray(image) if isinstance(image, np.ndarray) else image)
        if img.dim() == 3:
            img = img[None]
        if img.dim() != 4 or img.shape[-1] != 3 or img.dtype != torch.uint8:
            raise UserValueError(f"{name} must be uint8 (H, W, 3) or (B, H, W, 3), got {tuple(img.shape)} {img.dtype}")
        return img

    def batch_states(self, state, batch: int | None = None) -> np.ndarray:
        """Raw state(s) -> the core's (B, S) or, for a policy with a state history of H frames,
        (B, H, S) array. A history policy takes (H, S) / (B, H, S) histories (oldest first, at the
        dataset's frame rate) or plain (S,) / (B, S) states, which stand for a robot at rest (the
        current state repeated H times)."""
        st = np.asarray(state, dtype=np.float32)
        want = tuple(self.spec.input("state").shape[1:])
        S = want[-1]
        if len(want) == 1:
            st = st[None] if st.ndim == 1 else st
            ok = st.ndim == 2 and st.shape[1] == S
            form = f"({S},) or (B, {S})"
        else:
            H = want[0]
            # (B, S) when the images are a batch of B > 1 (then B == H is no history), else (H, S) is one history
            per_image = st.ndim == 2 and (st.shape != (H, S) or (batch is not None and batch > 1 and st.shape[0] == batch))
            if st.ndim == 1 or per_image:
                st = np.repeat((st[None] if st.ndim == 1 else st)[:, None], H, axis=1)  # at rest
            st = st[None] if st.ndim == 2 else st
            ok = st.ndim == 3 and st.shape[1:] == (H, S)
            form = f"({S},), (B, {S}), a history ({H}, {S}) or (B, {H}, {S})"
        if not ok or (batch is not None and st.shape[0] != batch):
            raise UserValueError(f"state must be {form} with B = images, got {np.asarray(state).shape}")
        return st

    def prepare(self, image, state, input_ids=None) -> dict:
        """Camera image(s) + raw state(s) -> the core's inputs (batched; a single sample gets B=1).

        ``image``: uint8 (H, W, 3) or (B, H, W, 3); for a policy with several cameras
        (``spec.meta['cameras']``) a dict ``{camera name: image}``."""
        cams = self.spec.meta.get("cameras")
        if isinstance(image, dict):
            if not cams:
                raise UserValueError("this policy takes one image, not a dict of cameras")
            missing = [c["name"] for c in cams if c["name"] not in image]
            if missing:
                raise UserValueError(f"images of cameras {missing} are missing; the policy takes {[c['name'] for c in cams]}")
            imgs = [(self._as_images(image[c["name"]], f"image {c['name']}"), c) for c in cams]
        else:
            if cams and len(cams) > 1:
                raise UserValueError(f"this policy takes {len(cams)} cameras: pass {{name: image}} for "
                                     f"{[c['name'] for c in cams]}")
            imgs = [(self._as_images(image, "image"), cams[0] if cams else None)]
        B0 = imgs[0][0].shape[0]
        if any(i.shape[0] != B0 for i, _ in imgs):
            raise UserValueError("every camera needs the same number of images")
        st = self.batch_states(state, B0)
        if not np.all(np.isfinite(st)):
            raise UserValueError("state has NaN or infinite values")
        B = B0
        tiles = torch.cat([self.tiles(i.to(self.device), c) for i, c in imgs], dim=1)
        out = {"pixel_values": tiles,
               "state": torch.from_numpy(self.spec.normalize_state(st).astype(np.float32))}
        if "input_ids" in self.spec.input_names:
            ids_spec = self.spec.input("input_ids")
            ids = np.asarray(input_ids if input_ids is not None else self.spec.meta.get("prompt_ids", []), np.int64)
            ids = np.broadcast_to(ids, (B, *ids.shape[-1:])) if ids.ndim == 1 else ids
            if tuple(ids.shape[1:]) != tuple(ids_spec.shape[1:]):
                raise UserValueError(f"input_ids must have length {ids_spec.shape[1]}, got {ids.shape}")
            out["input_ids"] = torch.from_numpy(np.array(ids, dtype=np.int64))
            if "attention_mask" in self.spec.input_names:
                out["attention_mask"] = torch.ones(ids.shape, dtype=torch.int64)
        return out

    def predict(self, image, state, input_ids=None) -> np.ndarray:
        """Image(s) + raw state(s) -> de-normalised action chunk(s): (chunk, action_dim) for one sample,
        (B, chunk, action_dim) for a batch. ``self.timings`` holds the last call's stages in ms."""
        t0 = time.perf_counter()
        inputs = self.prepare(image, state, input_ids)
        want = tuple(self.spec.input("state").shape[1:])
        single = np.ndim(state) == 1 or (len(want) == 2 and tuple(np.shape(state)) == want
                                         and inputs["pixel_values"].shape[0] == 1)
        t1 = time.perf_counter()
        y = self.infer(inputs)
        t2 = time.perf_counter()
        y = self.spec.denormalize_action(y)
        self.timings = {"preprocess_ms": (t1 - t0) * 1e3, "infer_ms": (t2 - t1) * 1e3,
                        "total_ms": (time.perf_counter() - t0) * 1e3}
        return y[0] if single else y
