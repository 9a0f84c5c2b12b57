"""Tests of the embedded (procedurally generated, NOT MANO) hand model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from beingh0.mano.embedded import (
    EMBEDDED_MODEL_VERSION,
    EMBEDDED_NOTE,
    SMPLX_TIP_VERTICES,
    TIP_VERTICES,
    generate_hand_model,
    write_mano_pickle,
)

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
CHAINS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12),
          "thumb": (13, 14, 15)}


# --------------------------------------------------------------------------
# tiny numpy LBS (same maths as smplx.lbs.lbs)
# --------------------------------------------------------------------------
def rodrigues(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64).reshape(-1, 3)
    th = np.linalg.norm(r, axis=1)
    out = np.tile(np.eye(3), (len(r), 1, 1))
    for n, (v, t) in enumerate(zip(r, th)):
        if t < 1e-12:
            continue
        k = v / t
        K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        out[n] = np.eye(3) + np.sin(t) * K + (1 - np.cos(t)) * K @ K
    return out


def lbs(model, betas=None, global_orient=None, hand_pose=None):
    """Vertices (778,3) and joints (16,3) of the model (flat_hand_mean=True)."""
    betas = np.zeros(10) if betas is None else np.asarray(betas, float)
    pose = np.concatenate([np.zeros(3) if global_orient is None else global_orient,
                           np.zeros(45) if hand_pose is None else hand_pose])
    v_shaped = model["v_template"] + model["shapedirs"] @ betas
    J = model["J_regressor"] @ v_shaped
    R = rodrigues(pose)
    feat = (R[1:] - np.eye(3)).reshape(-1)
    v_posed = v_shaped + model["posedirs"] @ feat
    parents = model["kintree_table"][0]
    G = np.zeros((16, 4, 4))
    for k in range(16):
        T = np.eye(4)
        T[:3, :3] = R[k]
        T[:3, 3] = J[k] - (J[parents[k]] if k > 0 else 0.0)
        G[k] = T if k == 0 else G[parents[k]] @ T
    A = G.copy()
    A[:, :3, 3] -= np.einsum("kij,kj->ki", G[:, :3, :3], J)
    T = np.einsum("vk,kij->vij", model["weights"], A)
    v = np.einsum("vij,vj->vi", T[:, :3, :3], v_posed) + T[:, :3, 3]
    return v, G[:, :3, 3]


@pytest.fixture(scope="module")
def right():
    return generate_hand_model("right")


@pytest.fixture(scope="module")
def left():
    return generate_hand_model("left")


def _edge_counts(F):
    cnt = {}
    for f in F:
        for q in range(3):
            a, b = int(f[q]), int(f[(q + 1) % 3])
            cnt[(a, b)] = cnt.get((a, b), 0) + 1
    return cnt


def _finger_vertices(model, digit):
    """Vertices mostly skinned to the last two joints of a digit."""
    j = CHAINS[digit]
    return np.flatnonzero(model["weights"][:, [j[1], j[2]]].sum(1) > 0.5)


def _inside(model, p, V=None):
    """Point-in-mesh test by ray casting along a skew direction (hole closed by a fan)."""
    V = model["v_template"] if V is None else V
    F = model["f"]
    cnt = _edge_counts(F)
    bnd = [(a, b) for (a, b) in cnt if (b, a) not in cnt]
    c = V[np.unique(np.array(bnd))].mean(0)
    tris = [V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]]
    extra = np.array([[V[b], V[a], c] for a, b in bnd])
    t0 = np.concatenate([tris[0], extra[:, 0]])
    t1 = np.concatenate([tris[1], extra[:, 1]])
    t2 = np.concatenate([tris[2], extra[:, 2]])
    d = np.array([0.31, 0.77, 0.55])
    e1, e2 = t1 - t0, t2 - t0
    h = np.cross(d, e2)
    a = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(a) > 1e-14
    f = 1.0 / np.where(ok, a, 1.0)
    s = p - t0
    u = f * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = f * (q @ d)
    t = f * np.einsum("ij,ij->i", e2, q)
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    return hit.sum() % 2 == 1


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------
def test_shapes_and_dtypes(right):
    expect = {"v_template": (778, 3), "shapedirs": (778, 3, 10), "posedirs": (778, 3, 135),
              "J_regressor": (16, 778), "weights": (778, 16), "kintree_table": (2, 16),
              "f": (1538, 3), "hands_components": (45, 45), "hands_mean": (45,)}
    assert set(expect) <= set(right)
    for k, shape in expect.items():
        assert right[k].shape == shape, k
        assert right[k].dtype == (np.int64 if k in ("f", "kintree_table") else np.float64), k
    assert right["kintree_table"][0].tolist() == PARENTS
    assert right["kintree_table"][1].tolist() == list(range(16))
    assert "NOT the MANO model" in EMBEDDED_NOTE and EMBEDDED_MODEL_VERSION == "1"


def test_deterministic_and_copies():
    a, b = generate_hand_model(), generate_hand_model()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    a["v_template"][:] = 0.0
    assert np.abs(generate_hand_model()["v_template"]).max() > 0.05
    with pytest.raises(ValueError):
        generate_hand_model("middle")


def test_topology(right):
    F, V = right["f"], right["v_template"]
    assert F.min() == 0 and F.max() == 777 and len(np.unique(F)) == 778
    assert all(len(set(f)) == 3 for f in F.tolist())
    area = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    assert area.min() > 1e-8
    cnt = _edge_counts(F)
    assert max(cnt.values()) == 1  # consistent orientation: no directed edge used twice
    bnd = [(a, b) for (a, b) in cnt if (b, a) not in cnt]
    assert len(bnd) == 16
    n_edges = len({frozenset(e) for e in cnt})
    assert 778 - n_edges + 1538 == 1  # disk: Euler characteristic 1
    # boundary forms one loop, at the wrist (most proximal, +x end)
    nxt = dict(bnd)
    v0, loop = bnd[0][0], [bnd[0][0]]
    while nxt[loop[-1]] != v0:
        loop.append(nxt[loop[-1]])
    assert len(loop) == 16
    assert V[loop, 0].min() > V[:, 0].max() - 0.005
    # connected
    adj = {}
    for a, b in cnt:
        adj.setdefault(a, set()).add(b)
    seen, stack = {0}, [0]
    while stack:
        for w in adj[stack.pop()] - seen:
            seen.add(w)
            stack.append(w)
    assert len(seen) == 778
    # outward: positive enclosed volume after closing the wrist with a fan
    c = V[loop].mean(0)
    vol = np.einsum("ij,ij->i", V[F[:, 0]], np.cross(V[F[:, 1]], V[F[:, 2]])).sum()
    vol += sum(np.dot(V[b], np.cross(V[a], c)) for a, b in bnd)
    assert 2e-4 < vol / 6 < 6e-4  # 200-600 cm^3


def test_fingertips(right):
    V = right["v_template"]
    for digit, idx in TIP_VERTICES.items():
        verts = _finger_vertices(right, digit)
        j = CHAINS[digit]
        axis = V[idx] - (right["J_regressor"] @ V)[j[2]]
        axis /= np.linalg.norm(axis)
        assert idx in verts
        assert (V[verts] @ axis).max() == pytest.approx(V[idx] @ axis)
        assert np.linalg.norm(V[SMPLX_TIP_VERTICES[digit]] - V[idx]) < 0.002
    # fingers point along -x, thumb on +z, pinky on -z
    tips = {d: V[i] for d, i in TIP_VERTICES.items()}
    assert tips["middle"][0] == V[:, 0].min()
    assert tips["thumb"][2] > tips["index"][2] > tips["middle"][2] > tips["ring"][2] > tips["pinky"][2]


def test_joints(right):
    R, V = right["J_regressor"], right["v_template"]
    assert R.min() >= 0
    np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-12)
    J = R @ V
    np.testing.assert_allclose(J[0], [0.09, 0.005, 0.005], atol=1e-6)
    for k in range(16):
        assert _inside(right, J[k]), k
    # wrist to middle tip ~ 0.18-0.19 m; MCPs at the distal end of the palm
    assert 0.18 < np.linalg.norm(V[TIP_VERTICES["middle"]] - J[0]) < 0.19
    for k in (1, 4, 7, 10):
        assert 0.07 < J[0, 0] - J[k, 0] < 0.095
    # bone lengths of the middle finger (46/28/24 mm +- a few)
    assert 0.040 < np.linalg.norm(J[5] - J[4]) < 0.050
    assert 0.024 < np.linalg.norm(J[6] - J[5]) < 0.032
    # thumb CMC radial and palmar of the wrist, inside the thenar
    assert J[13, 2] > J[0, 2] + 0.01 and J[13, 1] < J[0, 1]
    not_thumb = right["weights"][:, 13:].sum(1) < 0.2
    palm_width = np.ptp(V[:, 2][(V[:, 0] > J[4, 0]) & (V[:, 0] < J[4, 0] + 0.025) & not_thumb])
    assert 0.075 < palm_width < 0.09


def test_weights(right):
    W = right["weights"]
    assert W.min() >= 0
    np.testing.assert_allclose(W.sum(1), 1.0, atol=1e-12)
    for digit, idx in TIP_VERTICES.items():  # fingertip segment -> DIP / IP joint
        assert W[idx, CHAINS[digit][2]] > 0.99
    assert (W.argmax(1) == 0).sum() > 150  # the palm follows the wrist


def test_flexion_curls_towards_palm(right):
    pose = np.zeros((15, 3))
    pose[:12] = [0.0, 0.0, 1.2]
    v0, J0 = lbs(right)
    v1, _ = lbs(right, hand_pose=pose.ravel())
    palm_centre = J0[[0, 1, 4, 7, 10]].mean(0)
    for digit in ("index", "middle", "ring", "pinky"):
        i = TIP_VERTICES[digit]
        assert v1[i, 1] < v0[i, 1] - 0.03  # tip moves to the palm side (-y)
        assert np.linalg.norm(v1[i] - palm_centre) < np.linalg.norm(v0[i] - palm_centre) - 0.03
    # thumb untouched, mesh finite
    assert np.allclose(v1[TIP_VERTICES["thumb"]], v0[TIP_VERTICES["thumb"]], atol=1e-6)
    assert np.isfinite(v1).all()


def test_betas_change_size(right):
    v0, J0 = lbs(right)
    v1, J1 = lbs(right, betas=np.r_[2.0, np.zeros(9)])
    i = TIP_VERTICES["middle"]
    l0, l1 = np.linalg.norm(v0[i] - J0[0]), np.linalg.norm(v1[i] - J1[0])
    assert l1 > 1.05 * l0
    S = right["shapedirs"]
    norms = np.linalg.norm(S.reshape(-1, 10), axis=0)
    assert (norms > 1e-3).all()
    # directions differ in effect (no two nearly parallel)
    C = (S.reshape(-1, 10) / norms).T @ (S.reshape(-1, 10) / norms)
    assert np.abs(C - np.eye(10)).max() < 0.9
    # +-2 keeps a plausible hand (length within 15 %)
    for b in range(10):
        for sgn in (-2.0, 2.0):
            betas = np.zeros(10)
            betas[b] = sgn
            v, J = lbs(right, betas=betas)
            assert 0.85 * l0 < np.linalg.norm(v[i] - J[0]) < 1.15 * l0


def test_posedirs(right):
    P = right["posedirs"]
    assert np.abs(P).max() > 5e-4
    assert np.abs(P).max() < 5e-3
    # a 90 degree flexion of the index PIP moves skin by a few millimetres, only near the joint
    pose = np.zeros(45)
    pose[3:6] = [0, 0, np.pi / 2]
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    feat = np.zeros((15, 3, 3))
    feat[1] = R - np.eye(3)
    d = np.linalg.norm(P @ feat.ravel(), axis=1)
    assert 0.001 < d.max() < 0.006
    J = right["J_regressor"] @ right["v_template"]
    far = np.linalg.norm(right["v_template"] - J[2], axis=1) > 0.03
    assert d[far].max() == 0.0


def test_hands_pca(right):
    C, m = right["hands_components"], right["hands_mean"]
    np.testing.assert_allclose(C @ C.T, np.eye(45), atol=1e-10)
    assert np.linalg.matrix_rank(C) == 45
    flex = m.reshape(15, 3)[[0, 3, 6, 9], 2]  # MCP flexion of the four fingers
    assert (flex > 0.05).all() and (flex < 0.35).all()
    # first component is a grasp: mostly flexion (z) of the finger joints
    c0 = C[0].reshape(15, 3)
    assert np.abs(c0[:12, 2]).sum() > 0.6 * np.abs(c0).sum()


def test_left_is_mirror(right, left):
    M = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(left["v_template"], right["v_template"] * M)
    np.testing.assert_array_equal(left["J_regressor"], right["J_regressor"])
    np.testing.assert_array_equal(left["weights"], right["weights"])
    rng = np.random.default_rng(0)
    betas, go, hp = rng.normal(size=10), rng.normal(0, 0.5, 3), rng.normal(0, 0.5, 45)
    vr, Jr = lbs(right, betas, go, hp)
    mir = np.tile([1.0, -1.0, -1.0], 16)
    pl = np.concatenate([go, hp]) * mir
    vl, Jl = lbs(left, betas, pl[:3], pl[3:])
    np.testing.assert_allclose(vl, vr * M, atol=1e-12)
    np.testing.assert_allclose(Jl, Jr * M, atol=1e-12)
    np.testing.assert_allclose(left["hands_mean"], right["hands_mean"] * mir[3:])
    np.testing.assert_allclose(left["hands_components"] @ left["hands_components"].T, np.eye(45), atol=1e-10)
    # left faces still point outwards
    V, F = left["v_template"], left["f"]
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    nr = np.cross(right["v_template"][right["f"][:, 1]] - right["v_template"][right["f"][:, 0]],
                  right["v_template"][right["f"][:, 2]] - right["v_template"][right["f"][:, 0]])
    np.testing.assert_allclose(n, nr * M, atol=1e-15)


def test_pickle_roundtrip(right, tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano_pickle(right, path)
    with open(path, "rb") as fh:
        data = pickle.load(fh, encoding="latin1")
    assert data["beingh0_version"] == EMBEDDED_MODEL_VERSION
    assert data["beingh0_note"] == EMBEDDED_NOTE
    for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f", "hands_components"):
        np.testing.assert_array_equal(data[k], right[k])
    with open(path, "rb") as fh:
        assert fh.read(2) == b"\x80\x02"  # protocol 2


@pytest.mark.parametrize("side", ["right", "left"])
def test_smplx_matches_numpy_lbs(side, tmp_path):
    smplx = pytest.importorskip("smplx")
    torch = pytest.importorskip("torch")
    model = generate_hand_model(side)
    path = tmp_path / ("MANO_RIGHT.pkl" if side == "right" else "MANO_LEFT.pkl")
    write_mano_pickle(model, path)
    layer = smplx.create(str(path), model_type="mano", use_pca=False, is_rhand=side == "right",
                         flat_hand_mean=True, dtype=torch.float64)
    assert layer.is_rhand == (side == "right")
    rng = np.random.default_rng(1)
    betas, go, hp = rng.normal(size=10), rng.normal(0, 0.5, 3), rng.normal(0, 0.5, 45)
    with torch.no_grad():
        out = layer(betas=torch.tensor(betas[None]), global_orient=torch.tensor(go[None]),
                    hand_pose=torch.tensor(hp[None]), transl=torch.zeros(1, 3, dtype=torch.float64))
    v, J = lbs(model, betas, go, hp)
    np.testing.assert_allclose(out.vertices[0].numpy(), v, atol=1e-5)
    np.testing.assert_allclose(out.joints[0, :16].numpy(), J, atol=1e-5)
    # the PCA path with the non-flat mean equals hand_pose = mean + coeffs @ components
    layer_pca = smplx.create(str(path), model_type="mano", use_pca=True, num_pca_comps=6,
                             flat_hand_mean=False, dtype=torch.float64)
    coeffs = rng.normal(size=6)
    with torch.no_grad():
        out = layer_pca(betas=torch.tensor(betas[None]), global_orient=torch.tensor(go[None]),
                        hand_pose=torch.tensor(coeffs[None]), transl=torch.zeros(1, 3, dtype=torch.float64))
    v, _ = lbs(model, betas, go, model["hands_mean"] + coeffs @ model["hands_components"][:6])
    np.testing.assert_allclose(out.vertices[0].numpy(), v, atol=1e-5)
