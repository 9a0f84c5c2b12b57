"""pytest-benchmark: mano_forward / mano_joints per backend vs smplx, on identical inputs.

    pytest bench/bench_mano.py --benchmark-enable --benchmark-group-by=param:batch

The ratio table and JSON records (ENGINEERING.md section 5) come from `beingh0 bench mano`;
this file gives pytest-benchmark's statistics for the same setup factory.
"""
import pytest
import torch

from beingh0.benchmark.mano import make_inputs, smplx_layer
from beingh0.mano.model import ManoModel
from beingh0.ops import mano_forward, mano_joints
from beingh0.ops.backend import Backend, is_available

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
IMPLS = ["smplx", "reference"] + [b.value for b in ((Backend.CUDA, Backend.TRITON) if DEVICE == "cuda" else (Backend.CPP,))
                                  if is_available(b)[0]]


@pytest.fixture(scope="module")
def model():
    return ManoModel.embedded("right").to(DEVICE)


@pytest.mark.parametrize("batch", [1, 1024])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", ["mano_forward", "mano_joints"])
def test_mano(benchmark, model, op, impl, batch):
    if impl == "smplx" and op == "mano_joints":
        pytest.skip("smplx has no keypoint-only path; its full forward is the mano_joints anchor")
    pytest.importorskip("smplx")
    betas, pose, trans = make_inputs(batch, DEVICE)
    benchmark.group = f"{op} batch={batch} {DEVICE}"
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    if impl == "smplx":
        layer = smplx_layer(model, DEVICE, batch)
        fn = lambda: layer(betas=betas.expand(batch, -1), global_orient=pose[:, :3], hand_pose=pose[:, 3:], transl=trans)
    else:
        c = model.constants(DEVICE, torch.float32, tips_only=op == "mano_joints")
        f = mano_forward if op == "mano_forward" else mano_joints
        fn = lambda: f(betas, pose, trans, c, backend=impl, check=False)

    def run():
        with torch.no_grad():
            fn()
        sync()

    benchmark(run)
