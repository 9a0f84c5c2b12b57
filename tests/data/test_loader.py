"""Samples and the loader: features equal the motion reference; exact, resumable, split without
duplicates or losses across workers and ranks."""
import numpy as np
import pytest
import torch

from beingh0.benchmark.data import random_source
from beingh0.data.build import build_dataset
from beingh0.data.loader import EpochSampler, ResumableLoader, ShardDataset, epoch_order
import copy

from beingh0.mano import hand_model
from beingh0.motion import canonical_frame, canonicalize, encode_features, resample, to_right_hand


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader") / "ds"
    # 7 episodes of 2.4 s at 24 FPS (15 FPS resampling is not an integer ratio), both hands, gaps.
    build_dataset(random_source(), None, root, {"episodes": 7, "seconds": 2.4, "fps": 24.0, "frames": "jpeg"},
                  episodes_per_shard=3, progress=False)
    return root


def _ids(loader):
    return [int(i) for b in loader for i in b["index"]]


@pytest.mark.parametrize("feature", ["D162", "D51", "D109"])
def test_features_match_motion_reference(ds_root, feature):
    ds = ShardDataset(ds_root, feature=feature, seed=3)
    rng = np.random.default_rng(0)
    for sid in rng.choice(len(ds), 6, replace=False).tolist():
        s = ds[sid]
        ep = ds.index.read(s["episode"])
        h = ep.hands[s["hand"]]
        params = {k: torch.from_numpy(getattr(h, k).astype(np.float64)) for k in ("global_orient", "hand_pose", "trans")}
        if not h.valid.all():  # the reference: resample only where the track is valid around the window
            idx = np.maximum.accumulate(np.where(h.valid, np.arange(len(h.valid)), -1))
            idx[idx < 0] = np.flatnonzero(h.valid)[0]
            params = {k: v[idx] for k, v in params.items()}
        p15 = resample(params, ep.fps, 15)
        a = s["window_start"]
        rows = slice(a, min(a + 15, len(p15["trans"])))
        win = {k: v[rows] for k, v in p15.items()}
        win["betas"] = torch.from_numpy(h.betas.astype(np.float64))
        can, _ = canonicalize(win, frame=canonical_frame(p15, s["ref_index"]))
        # left hands: features in the right-hand convention (the mirrored hand, the right model)
        can = to_right_hand(can, s["hand"])
        model = copy.deepcopy(hand_model("right")).double() if feature == "D162" else None
        ref = encode_features(can, feature, model=model)
        m = s["mask"][: ref.shape[0]].numpy()
        assert m.any() and 0 <= a - s["ref_index"] <= 150
        got = s["features"][: ref.shape[0]].double()
        err = (got[m] - ref[torch.from_numpy(m)]).abs().max().item()
        assert err < 2e-5, (feature, sid, err)
        assert (s["features"][~s["mask"]] == 0).all() and not s["mask"][15]


def test_image_samples_and_transform(ds_root):
    seen = []

    def transform(s):  # scale depth by 2: wrist positions scale, canonical trans scales too
        seen.append(s["image"].shape)
        s = dict(s, mano=dict(s["mano"], trans=s["mano"]["trans"] * 2, ref_trans=s["mano"]["ref_trans"] * 2))
        return s

    a = ShardDataset(ds_root, kind="image", seed=1)
    b = ShardDataset(ds_root, kind="image", seed=1, transform=transform)
    sa, sb = a[5], b[5]
    assert sa["image"].shape == (48, 64, 3) and sa["image"].dtype == np.uint8 and seen == [(48, 64, 3)]
    assert sa["intrinsics"].shape == (4,) and sa["width"] == 64 and sa["distortion_model"] == "radtan"
    ep = a.index.read(sa["episode"])
    from beingh0.data.video import episode_frames
    np.testing.assert_array_equal(sa["image"], episode_frames(ep, [sa["image_frame"]])[0])
    assert sa["image_frame"] == round(sa["window_start"] * 24 / 15)
    m = sa["mask"]
    torch.testing.assert_close(sb["features"][m][:, 96:99], 2 * sa["features"][m][:, 96:99])
    batch = next(iter(ResumableLoader(a, batch_size=4)))
    assert batch["image"].shape == (4, 48, 64, 3) and batch["features"].shape == (4, 16, 162)


def test_order_is_deterministic_and_exact(ds_root):
    ds = ShardDataset(ds_root)
    n = len(ds)
    assert n > 20
    for shuffle in ("block", "global", "none"):
        o = epoch_order(n, 5, 2, shuffle, ds.episode_starts(), block_episodes=2)
        assert sorted(o.tolist()) == list(range(n))
        np.testing.assert_array_equal(o, epoch_order(n, 5, 2, shuffle, ds.episode_starts(), block_episodes=2))
    assert not np.array_equal(epoch_order(n, 5, 2, "block", ds.episode_starts()), epoch_order(n, 5, 3, "block", ds.episode_starts()))
    # block shuffle keeps locality: the order runs through blocks of 2 episodes, each seen only there
    o = epoch_order(n, 5, 0, "block", ds.episode_starts(), block_episodes=2)
    blocks = []
    for e in ds.table["episode"][o].tolist():
        if not blocks or (e not in blocks[-1] and len(blocks[-1]) == 2):
            blocks.append(set())
        blocks[-1].add(e)
    assert sum(len(b) for b in blocks) == 7 and len(blocks) == 4


def test_workers_and_ranks_split_exactly(ds_root):
    ds = ShardDataset(ds_root, seed=2)
    n = len(ds)
    ref = _ids(ResumableLoader(ds, batch_size=5, seed=2))
    assert sorted(ref) == list(range(n))  # an epoch: every sample once
    assert _ids(ResumableLoader(ds, batch_size=5, seed=2, num_workers=2)) == ref  # workers keep the order
    for W in (2, 3):
        parts = [_ids(ResumableLoader(ds, batch_size=4, seed=2, rank=r, world_size=W)) for r in range(W)]
        allids = [i for p in parts for i in p]
        assert sorted(allids) == list(range(n))  # no duplicates, none lost
        assert [parts[p % W][p // W] for p in range(n)] == ref  # rank r reads positions r, r + W, ...
    even = [len(_ids(ResumableLoader(ds, batch_size=4, seed=2, rank=r, world_size=3, drop_uneven=True))) for r in range(3)]
    assert len(set(even)) == 1 and sum(even) == n - n % 3
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(ds, rank=3, world_size=3)


def test_resume_exactly_with_other_workers_and_world_size(ds_root):
    ds = ShardDataset(ds_root, seed=9)
    n = len(ds)
    full = ResumableLoader(ds, batch_size=4, seed=9, epoch=1)
    ref = [b for b in full]
    ref_ids = [int(i) for b in ref for i in b["index"]]
    assert full.state_dict()["epoch"] == 2 and full.state_dict()["position"] == 0

    a = ResumableLoader(ds, batch_size=4, seed=9, num_workers=2, epoch=1)
    it, got = iter(a), []
    for _ in range(3):
        got += [int(i) for i in next(it)["index"]]
    state = a.state_dict()
    assert state["position"] == 12 and state["epoch"] == 1
    del it
    b = ResumableLoader(ds, batch_size=3, seed=9, num_workers=0)  # other workers and batch size
    b.load_state_dict(state)
    rest = [b2 for b2 in b]
    got += [int(i) for bb in rest for i in bb["index"]]
    assert got == ref_ids and b.state_dict()["epoch"] == 2
    # the same sample draws the same reference frame after resuming
    torch.testing.assert_close(rest[0]["features"][0], ref[3]["features"][0])
    # resume on 2 ranks: together they read exactly the rest of the epoch
    parts = []
    for r in range(2):
        c = ResumableLoader(ds, batch_size=4, seed=9, rank=r, world_size=2)
        c.load_state_dict(state)
        parts.append(_ids(c))
    assert sorted(parts[0] + parts[1]) == sorted(ref_ids[12:]) and len(parts[0] + parts[1]) == n - 12
    assert sorted(ref_ids) == list(range(n))


def test_state_mismatch_is_a_clear_error(ds_root):
    ds = ShardDataset(ds_root, seed=0)
    st = ResumableLoader(ds, batch_size=4).state_dict()
    for k, v in (("seed", 1), ("num_samples", 3), ("fingerprint", "x"), ("version", 9)):
        with pytest.raises(ValueError, match="version" if k == "version" else k):
            ResumableLoader(ds, batch_size=4).load_state_dict(dict(st, **{k: v}))
    with pytest.raises(ValueError, match="outside"):
        ResumableLoader(ds, batch_size=4).load_state_dict(dict(st, position=10**6))


def _take(loader, k):
    """Ids of the batches of a new iteration of ``loader`` until at least ``k`` samples, then break."""
    got = []
    for b in loader:
        got += [int(i) for i in b["index"]]
        if len(got) >= k:
            break
    return got


@pytest.mark.parametrize("workers", [0, 2])
def test_reiterating_after_break_resumes_exactly(ds_root, workers):
    ds = ShardDataset(ds_root, seed=4)
    n = len(ds)
    ref = _ids(ResumableLoader(ds, batch_size=5, seed=4))
    a = ResumableLoader(ds, batch_size=5, seed=4, num_workers=workers)
    got = _take(a, 15)
    assert a.state_dict()["position"] == 15 and got == ref[:15]
    got += _take(a, 10)  # a new `for` over the same loader continues; the count stays true (25, not 40)
    st = a.state_dict()
    assert st["position"] == 25 and st["epoch"] == 0 and got == ref[:25]
    b = ResumableLoader(ds, batch_size=4, seed=4)  # resuming from that state: the rest, exactly
    b.load_state_dict(st)
    assert got + _ids(b) == ref
    assert got + _ids(a) == ref  # and so does the loader itself
    assert a.state_dict()["epoch"] == 1 and a.state_dict()["position"] == 0
    # breaking after the last batch of an epoch: the next iteration is the next epoch, whole
    c = ResumableLoader(ds, batch_size=5, seed=4, num_workers=workers)
    assert _take(c, n) == ref and c.state_dict()["position"] == n
    nxt = _ids(c)
    assert sorted(nxt) == list(range(n)) and nxt != ref and c.state_dict()["epoch"] == 2
    c.set_epoch(0)  # an explicit restart
    assert c.state_dict()["position"] == 0 and _ids(c) == ref


def test_iterating_leaves_the_global_rng_alone(ds_root):
    """The loader has its own DataLoader generator: iterating never draws from torch's global RNG
    (else a resumed run, which iterates a different number of times, would shift every later draw)."""
    ds = ShardDataset(ds_root, kind="motion")
    torch.manual_seed(0)
    want = torch.rand(3)
    for workers in (0, 2):
        torch.manual_seed(0)
        loader = ResumableLoader(ds, batch_size=5, seed=2, num_workers=workers)
        for _ in range(2):
            _ids(loader)
        assert torch.equal(torch.rand(3), want)
