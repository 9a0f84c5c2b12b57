"""Our MANO forward equals smplx's on the same model file (the embedded hand in MANO's pickle layout)."""
import pytest
import torch

from beingh0.core.constants import KEYPOINT_ORDER, TIP_IDS_SMPLX
from beingh0.mano.embedded import generate_hand_model, write_mano_pickle
from beingh0.mano.model import ManoModel
from beingh0.ops.backend import Backend, is_available
from beingh0.testing import assert_verbose_allclose, random_pose

smplx = pytest.importorskip("smplx", reason="smplx is the test-time reference: pip install smplx")

BACKENDS = ["reference"] + (["cpp"] if is_available(Backend.CPP)[0] else [])


@pytest.fixture(scope="module", params=["right", "left"])
def files(request, tmp_path_factory):
    side = request.param
    path = tmp_path_factory.mktemp(side) / f"MANO_{side.upper()}.pkl"
    write_mano_pickle(generate_hand_model(side), path)
    return side, path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flat", [True, False], ids=["flat_mean", "smplx_mean"])
@pytest.mark.parametrize("pca", [False, True], ids=["axis_angle", "pca12"])
def test_forward_equals_smplx(files, backend, flat, pca):
    side, path = files
    B = 7
    layer = smplx.create(str(path), model_type="mano", is_rhand=side == "right", use_pca=pca, num_pca_comps=12,
                         flat_hand_mean=flat, batch_size=B)
    ours = ManoModel.from_file(path, use_pca=pca, num_pca_comps=12, flat_hand_mean=flat, trans_mode="smplx")
    assert ours.side == side
    g = torch.Generator().manual_seed(3)
    betas = torch.randn(B, 10, generator=g)
    pose = random_pose(B, seed=4, dtype=torch.float32)
    hand_pose = torch.randn(B, 12, generator=g) if pca else pose[:, 3:]
    transl = 0.2 * torch.randn(B, 3, generator=g)
    with torch.no_grad():
        ref = layer(betas=betas, global_orient=pose[:, :3], hand_pose=hand_pose, transl=transl)
        out = ours(betas, pose[:, :3], hand_pose, transl, backend=backend)
    assert_verbose_allclose(out.vertices, ref.vertices, atol=1e-5, name="vertices")
    assert_verbose_allclose(out.joints, ref.joints, atol=1e-5, name="16 joints")


def test_fingertips_and_wrist_convention(files):
    side, path = files
    layer = smplx.create(str(path), model_type="mano", is_rhand=side == "right", use_pca=False, flat_hand_mean=True)
    pose = random_pose(1, seed=5, dtype=torch.float32, mix=False)
    trans = torch.tensor([[0.1, -0.05, 0.6]])
    with torch.no_grad():
        ref = layer(global_orient=pose[:, :3], hand_pose=pose[:, 3:])
        ours = ManoModel.from_file(path, tips="smplx")(global_orient=pose[:, :3], hand_pose=pose[:, 3:], trans=trans)
    # Being-H0 convention: trans is the wrist, the rest of the hand rigidly follows
    assert_verbose_allclose(ours.keypoints[:, 0], trans, atol=1e-6, name="wrist")
    rel = ref.vertices - ref.joints[:, :1] + trans[:, None]
    assert_verbose_allclose(ours.vertices, rel, atol=1e-5, name="wrist-centred mesh + trans")
    tips = ours.keypoints[:, [KEYPOINT_ORDER.index(k) for k in range(16, 21)]]
    assert_verbose_allclose(tips, rel[:, list(TIP_IDS_SMPLX)], atol=1e-5, name="smplx fingertips")
