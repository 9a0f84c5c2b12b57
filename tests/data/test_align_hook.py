"""The camera-alignment transform (beingh0.align) plugged into the loader's transform hook."""
import numpy as np
import pytest
import torch

from beingh0.align import AlignTransform, BalanceConfig
from beingh0.data.loader import ShardDataset
from beingh0.core.rotations import axis_angle_to_matrix


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory):
    from beingh0.data.synth import SynthConfig, synth_dataset

    out = tmp_path_factory.mktemp("hook") / "synth"
    synth_dataset(out, 2, SynthConfig(seconds=1.2, size=(96, 72)), progress=False)
    return out


def _n(x):
    return np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x, np.float64)


def _project(K, p):
    return np.stack([K[0] * p[..., 0] / p[..., 2] + K[2], K[1] * p[..., 1] / p[..., 2] + K[3]], -1)


@pytest.mark.parametrize("balance", [None, BalanceConfig()])
def test_loader_samples_go_through_align(synth_dataset, balance):
    plain = ShardDataset(synth_dataset, kind="image", reference="first", seed=3)
    tf = AlignTransform(balance=balance, backend="reference" if balance is None else None)
    aligned = ShardDataset(synth_dataset, kind="image", reference="first", seed=3, transform=tf)
    assert len(plain) == len(aligned) > 0
    moved = 0
    for i in range(0, len(plain), max(1, len(plain) // 3)):
        a, b = plain[i], aligned[i]
        assert b["image"].shape == (3, 448, 448) and b["image"].dtype == torch.float32
        assert b["image_mask"].shape == (448, 448) and b["image_mask"].any()
        assert torch.equal(a["mask"], b["mask"])  # frame validity is kept apart from the border mask
        assert b["features"].shape == a["features"].shape == (16, 162)
        K = np.asarray(b["intrinsics"], np.float64).reshape(-1)
        K = K if K.size == 4 else K[[0, 4, 2, 5]]
        # the wrist of the (possibly moved) hand projects where the warp sent its original projection
        t0 = _n(a["mano"]["trans"])[0]
        t1 = _n(b["mano"]["trans"])[0]
        H = b["align"]["dst_from_src"]
        u0 = _project(np.asarray(a["intrinsics"], np.float64), t0)
        warped = H[:2, :2] @ u0 + H[:2, 2]
        assert np.abs(_project(K, t1) - warped).max() < 0.5
        # joints stay consistent with global_orient: the wrist-relative joints turn with it
        R0 = axis_angle_to_matrix(torch.as_tensor(_n(a["mano"]["global_orient"])[:1]))[0].numpy()
        R1 = axis_angle_to_matrix(torch.as_tensor(_n(b["mano"]["global_orient"])[:1]))[0].numpy()
        j0 = _n(a["mano"]["joints"])[0] @ R0  # hand-frame joints (row vectors)
        j1 = _n(b["mano"]["joints"])[0] @ R1
        np.testing.assert_allclose(j0, j1, atol=1e-5)
        moved += b["align"]["scale"] != 1.0 or b["align"]["angle"] != 0.0
        if balance is None:  # alignment alone changes no 3D quantity, so the features are identical
            torch.testing.assert_close(a["features"], b["features"])
    assert moved > 0 if balance is not None else moved == 0


def test_balance_draws_depend_on_seed_epoch_and_sample_only(synth_dataset):
    """A resumed run (fresh dataset and transform objects, another transform seed, any fetch order or
    worker) balances every sample exactly as the original run did; another epoch draws anew."""
    mk = lambda tseed: ShardDataset(synth_dataset, kind="image", reference="first", seed=3,
                                    transform=AlignTransform(balance=BalanceConfig(), seed=tseed))
    a, b = mk(0), mk(123)
    n = len(a)
    ids = [0, n - 1, 1]
    first = [a[i]["align"] for i in ids]
    again = [b[i]["align"] for i in reversed(ids)][::-1]           # other objects, other order
    for x, y in zip(first, again):
        assert (x["scale"], x["angle"]) == (y["scale"], y["angle"])
        np.testing.assert_array_equal(x["dst_from_src"], y["dst_from_src"])
    assert a[ids[0]]["rng_key"] == (3, 0, ids[0])
    later = [a[n * 5 + i]["align"] for i in ids]                     # epoch 5: new draws
    assert any((x["scale"], x["angle"]) != (y["scale"], y["angle"]) for x, y in zip(first, later))


def test_balance_report_on_a_dataset(synth_dataset, tmp_path, capsys):
    from beingh0.cli.main import main

    png = tmp_path / "bal.png"
    assert main(["data", "balance", str(synth_dataset), "--png", str(png), "--group-by", "meta.camera_kind"]) == 0
    out = capsys.readouterr().out
    assert "TV to target" in out and png.stat().st_size > 10_000
    assert main(["data", "balance", str(synth_dataset), "--group-by", "colour"]) == 2
