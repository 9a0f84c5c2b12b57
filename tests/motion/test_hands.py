"""The left-hand convention and the one feature path (motion.hands): a left hand and its mirror
image give the same features (float64), through hand_features, the loader's features_batch and the
tokenizer's clip windows alike."""
import copy

import numpy as np
import pytest
import torch

from beingh0.data.samples import features_batch, window_params
from beingh0.mano import hand_model, mirror_points, mirror_pose
from beingh0.motion import (canonical_frame, canonicalize, encode_features, from_right_hand, hand_features,
                            hand_joints, to_right_hand)


def _params(T=20, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: scale * torch.randn(*batch, *s, generator=g, dtype=torch.float64)
    return {"global_orient": r(T, 3), "hand_pose": r(T, 45, scale=0.4), "trans": r(T, 3, scale=0.2) + 0.5,
            "betas": r(10, scale=0.5)}


def _mirror(p):
    out = dict(p)
    for k in ("global_orient", "hand_pose", "ref_global_orient"):
        if k in p:
            out[k] = mirror_pose(p[k])
    for k in ("trans", "ref_trans"):
        if k in p:
            out[k] = mirror_points(p[k])
    return out


def _model(side):
    return copy.deepcopy(hand_model(side)).double()


@pytest.mark.parametrize("spec", ["D162", "D114", "D109", "D51"])
def test_left_hand_and_its_mirrored_right_hand_agree(spec):
    left = _params(seed=1)
    left["joints"] = hand_joints(left, "left", _model("left"))          # the left hand's own model
    left["ref_global_orient"], left["ref_trans"] = left["global_orient"][3], left["trans"][3]
    right = _mirror({k: v for k, v in left.items() if k != "joints"})
    right["joints"] = hand_joints(right, "right", _model("right"))
    a = hand_features(left, spec, "left")
    b = hand_features(right, spec, "right")
    assert a.dtype == torch.float64 and a.shape == (20, int(spec[1:]))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    # and without mirroring the left hand's features differ (the convention matters)
    assert (hand_features(left, spec, "right") - b).abs().max() > 1e-2


def test_mixed_batch_equals_per_hand_and_mirror_is_an_involution():
    p = _params(T=16, seed=2, batch=(4,))
    p["joints"] = torch.randn(4, 16, 21, 3, dtype=torch.float64) * 0.05
    p["ref_global_orient"], p["ref_trans"] = p["global_orient"][:, 0], p["trans"][:, 0]
    sides = ["left", "right", "right", "left"]
    x = hand_features(p, "D162", sides)
    for i, s in enumerate(sides):
        one = hand_features({k: v[i] for k, v in p.items()}, "D162", s)
        torch.testing.assert_close(x[i], one, rtol=0, atol=0)
    back = from_right_hand(to_right_hand(p, sides), sides)
    for k in p:
        torch.testing.assert_close(back[k], p[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="4"):
        hand_features(p, "D162", ["left"] * 3)
    with pytest.raises(ValueError, match="'left' or 'right'"):
        hand_features(p, "D162", "middle")


def test_matches_canonicalize_then_encode_features():
    p = _params(T=15, seed=3)
    model = _model("right")
    ref = 5
    canon, _ = canonicalize({k: p[k] for k in ("global_orient", "hand_pose", "trans")}, frame=canonical_frame(p, ref))
    canon["betas"] = p["betas"]
    for spec in ("D162", "D51", "D109"):
        want = encode_features(canon, spec, model=model)
        q = dict(p, joints=hand_joints(p, "right", model), ref_global_orient=p["global_orient"][ref],
                 ref_trans=p["trans"][ref])
        torch.testing.assert_close(hand_features(q, spec, "right"), want, rtol=0, atol=1e-12)


def test_loader_features_batch_mirrors_left_hands():
    """The loader's path (window_params + features_batch on sidecar-like tracks): a left track and
    its mirrored right track give the same features, float64 in and out."""
    left = _params(T=40, seed=4)
    right = _mirror(left)
    tracks = []
    for side, p in (("left", left), ("right", right)):
        tr = {k: p[k].numpy() for k in ("global_orient", "hand_pose", "trans")}
        tr.update(joints=hand_joints(p, side, _model(side)).numpy(), valid=np.ones(40, bool), betas=p["betas"].numpy(),
                  side=side)
        tracks.append(tr)
    manos, masks = zip(*[window_params(t, 15, 7) for t in tracks])
    x = features_batch(list(manos), list(masks), "D162")
    assert x.dtype == torch.float64 and x.shape == (2, 16, 162)
    torch.testing.assert_close(x[0], x[1], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="side"):
        features_batch([{k: v for k, v in manos[0].items() if k != "side"}], [masks[0]], "D162")
