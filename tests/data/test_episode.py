"""The unified episode: round trips through the on-disk format, and clear errors on bad files."""
import io
import json
import tarfile

import numpy as np
import pytest

from beingh0.data import CameraTrack, Episode, EpisodeFormatError, Frames, HandTrack, TextAnnotations, TextSegment, load_episode, save_episode
from beingh0.data.episode import read_tar_members
from beingh0.data.video import encode_jpeg, encode_mp4, episode_frames


def _smooth_frames(T, H, W, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    out = np.empty((T, H, W, 3), np.uint8)
    for t in range(T):
        a, b, c = rng.uniform(0.05, 0.2, 3)
        for ch in range(3):
            out[t, ..., ch] = (127 + 100 * np.sin(a * x + b * y + c * t + ch)).astype(np.uint8)
    return out


def _episode(T=12, frames="none", sides=("right",), seed=0):
    rng = np.random.default_rng(seed)
    hands = {s: HandTrack.from_params(rng.normal(size=(T, 3)), rng.normal(size=(T, 45)) * 0.3, rng.normal(size=10),
                                      rng.normal(size=(T, 3)) * 0.1 + [0, 0, 0.5]) for s in sides}
    W, H = 47, 33
    fr = Frames()
    pix = _smooth_frames(T, H, W, seed)
    if frames == "mp4":
        fr = Frames("mp4", np.arange(T, dtype=np.int64), encode_mp4(pix, 15))
    elif frames == "jpeg":
        fr = Frames("jpeg", None, [encode_jpeg(p, 95) for p in pix])
    text = TextAnnotations("pick up the red cup", "the right hand grasps a cup", {"right": "grasp the cup"},
                           [TextSegment(0.0, 0.5, "reach for the cup", "the hand opens", "right")])
    cam = CameraTrack.constant(510.0, 505.0, 23.5, 16.0, W, H, T, distortion=[0.1, -0.01, 0.001, 0.0], distortion_model="radtan")
    return Episode(f"ep_{seed}", "synthetic", "CC0-1.0", 15.0, T, hands, cam, fr, text, {"seed": seed}), pix


@pytest.mark.parametrize("frames", ["none", "mp4", "jpeg"])
def test_round_trip(tmp_path, frames):
    ep, pix = _episode(frames=frames, sides=("left", "right"))
    back = load_episode(save_episode(ep, tmp_path / "e.tar"))
    for side in ("left", "right"):
        for name in ("global_orient", "hand_pose", "betas", "trans", "valid", "confidence"):
            np.testing.assert_array_equal(getattr(back.hands[side], name), getattr(ep.hands[side], name))
    np.testing.assert_array_equal(back.camera.intrinsics, ep.camera.intrinsics)
    np.testing.assert_array_equal(back.camera.distortion, ep.camera.distortion)
    assert back.text == ep.text and back.meta == ep.meta and back.fps == ep.fps
    if frames != "none":
        got = episode_frames(back, [0, 5, 11])
        assert got.shape == (3, 33, 47, 3)
        assert np.abs(got.astype(int) - pix[[0, 5, 11]]).mean() < 12  # lossy codecs (4:2:0 chroma on a 47x33 image)


def test_motion_only_has_no_frames():
    ep, _ = _episode()
    with pytest.raises(ValueError, match="motion-only"):
        episode_frames(ep)


def _rewrite(path, out, edit):
    members = read_tar_members(path)
    edit(members)
    with tarfile.open(out, "w") as tf:
        for n, d in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(d)
            tf.addfile(info, io.BytesIO(d))
    return out


def _edit_json(fn):
    def edit(m):
        k = next(n for n in m if n.endswith(".episode.json"))
        h = json.loads(m[k])
        fn(h)
        m[k] = json.dumps(h).encode()
    return edit


@pytest.mark.parametrize(
    "edit, field",
    [
        (_edit_json(lambda h: h.update(version=99)), "version"),
        (_edit_json(lambda h: h.update(schema="other")), "schema"),
        (_edit_json(lambda h: h["camera"].update(width=-3)), "camera.width"),
        (_edit_json(lambda h: h["text"]["segments"][0].update(t1=99.0)), "text.segments[0]"),
        (_edit_json(lambda h: h.pop("fps")), "fps"),
        (_edit_json(lambda h: h["arrays"]["hands.right.trans"].update(shape=[3, 3])), "hands.right.trans"),
        (lambda m: m.pop(next(n for n in m if n.endswith(".arrays.safetensors"))), "arrays.safetensors"),
        (lambda m: m.update({next(n for n in m if n.endswith(".arrays.safetensors")): b"\x00garbage"}), "arrays.safetensors"),
        (lambda m: m.update({next(n for n in m if n.endswith(".episode.json")): b"{not json"}), "episode.json"),
    ],
)
def test_malformed_files_name_the_field(tmp_path, edit, field):
    ep, _ = _episode()
    p = save_episode(ep, tmp_path / "e.tar")
    bad = _rewrite(p, tmp_path / "bad.tar", edit)
    with pytest.raises(EpisodeFormatError) as ei:
        load_episode(bad)
    assert str(bad) in str(ei.value) and field in str(ei.value)


def test_truncated_and_non_tar(tmp_path):
    ep, _ = _episode(frames="mp4")
    p = save_episode(ep, tmp_path / "e.tar")
    data = p.read_bytes()
    for cut in (100, len(data) // 3, len(data) // 2):  # (the tail is zero padding)
        (tmp_path / "t.tar").write_bytes(data[:cut])
        with pytest.raises(EpisodeFormatError, match="t.tar"):
            load_episode(tmp_path / "t.tar")
    (tmp_path / "x.tar").write_bytes(b"hello" * 100)
    with pytest.raises(EpisodeFormatError, match="x.tar"):
        load_episode(tmp_path / "x.tar")
    with pytest.raises(FileNotFoundError):
        load_episode(tmp_path / "missing.tar")


def test_validation_rejects_bad_values():
    ep, _ = _episode()
    ep.hands["right"].trans[3, 0] = np.nan
    with pytest.raises(EpisodeFormatError, match="hands.right.trans"):
        ep.validate()
    ep.hands["right"].valid[3] = False  # NaN at an invalid frame is allowed (gaps)
    ep.validate()
    ep.camera.intrinsics[0, 0] = 0
    with pytest.raises(EpisodeFormatError, match="focal"):
        ep.validate()
    ep2, _ = _episode()
    ep2.episode_id = "a.b"
    with pytest.raises(EpisodeFormatError, match="episode_id"):
        ep2.validate()


@pytest.mark.parametrize("name, value, field", [
    ("trans", 1e30, "hands.right.trans"), ("trans", 2000.0, "hands.right.trans"),
    ("hand_pose", -1e30, "hands.right.hand_pose"), ("global_orient", 500.0, "hands.right.global_orient"),
    ("betas", 1e4, "hands.right.betas"),
])
def test_implausible_values_are_refused_on_load(tmp_path, name, value, field):
    ep, _ = _episode()
    p = save_episode(ep, tmp_path / "e.tar")

    def edit(m):
        from safetensors.numpy import load, save
        k = next(n for n in m if n.endswith(".arrays.safetensors"))
        a = load(m[k])
        a[f"hands.right.{name}"].reshape(-1)[2] = value
        m[k] = save(a)
    bad = _rewrite(p, tmp_path / "bad.tar", edit)
    with pytest.raises(EpisodeFormatError, match=rf"bad.tar: field '{field}'"):
        load_episode(bad)
    ep.hands["right"].valid[:] = False  # hand values at invalid frames are not used, so not checked...
    getattr(ep.hands["right"], name).reshape(-1)[2] = value
    if name != "betas":  # ...but betas hold for the whole episode
        ep.validate()


@pytest.mark.parametrize("edit, field", [
    (_edit_json(lambda h: h.update(text=None)), "text"),
    (_edit_json(lambda h: h.update(fps=float("nan"))), "fps"),
    (_edit_json(lambda h: h.update(fps=-15.0)), "fps"),
    (_edit_json(lambda h: h.update(num_frames=0)), "num_frames"),
    (_edit_json(lambda h: h.pop("text")), "text"),
    (_edit_json(lambda h: h.pop("camera")), "camera"),
    (_edit_json(lambda h: h["text"]["segments"][0].pop("hand")), "text.segments[0]"),
    (_edit_json(lambda h: h.update(hands=["middle"])), "hands"),
])
def test_broken_episode_json_names_file_and_field(tmp_path, edit, field):
    from beingh0.core.errors import UserValueError

    ep, _ = _episode()
    bad = _rewrite(save_episode(ep, tmp_path / "e.tar"), tmp_path / "bad.tar", edit)
    with pytest.raises(UserValueError) as ei:  # EpisodeFormatError is a UserValueError: one line at the CLI
        load_episode(bad)
    assert isinstance(ei.value, EpisodeFormatError)
    assert str(ei.value).startswith(f"{bad}: field '{field}'") and "\n" not in str(ei.value)


def test_robot_arrays_round_trip_and_are_checked(tmp_path):
    from beingh0.core.errors import UserFileError

    ep, _ = _episode()
    ep.robot = {"observation.state": np.linspace(0, 1, 12 * 4, dtype=np.float32).reshape(12, 4),
                "frame_index": np.arange(12, dtype=np.int64)}
    back = load_episode(save_episode(ep, tmp_path / "e.tar"))
    assert sorted(back.robot) == ["frame_index", "observation.state"]
    np.testing.assert_array_equal(back.robot["observation.state"], ep.robot["observation.state"])
    ep.hands = {}  # a robot episode needs no hand track
    ep.validate()
    ep.robot["action"] = np.full((12, 2), np.nan, np.float32)
    with pytest.raises(EpisodeFormatError, match="robot.action"):
        ep.validate()
    ep.robot = {"action": np.zeros((11, 2), np.float32)}
    with pytest.raises(EpisodeFormatError, match=r"robot.action.*\(12,\)"):
        ep.validate()
    with pytest.raises(UserFileError, match="is a folder"):
        load_episode(tmp_path)
