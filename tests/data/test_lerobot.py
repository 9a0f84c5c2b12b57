"""LeRobot reader on the real v2.1 sample (AV1 video, nested names, only episode 1 present), a v3.0
dataset written here from it (two episodes sharing one data file and one video), and bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from beingh0.core.errors import UserError  # noqa: E402
from beingh0.data.lerobot import LeRobotDataset, LeRobotFormatError  # noqa: E402
from beingh0.data.video import decode_video  # noqa: E402

CAM = "observation.images.cam_high"


@pytest.fixture(scope="module")
def ds(v21):
    return LeRobotDataset(v21)


def test_real_v21_metadata(ds):
    assert ds.version == "v2.1" and ds.fps == 30 and ds.num_episodes == 100 and ds.video_keys == [CAM]
    names = ds.feature_names("observation.state")  # nested [[...]] in info.json
    assert len(names) == 26 and names[0] == "kLeftShoulderPitch" and names[-1] == "kRightHandThumbRotation"
    assert ds.feature_names("timestamp") is None
    assert ds.available_episodes() == [1]
    assert "v2.1" in repr(ds)


def test_real_v21_episode_and_av1_frames(ds, v21):
    ep = ds.episode(1)
    assert ep.length == 393 and ep.tasks == ["Pick up the yellow bottle on the table."]
    assert ep.state.shape == (393, 26) and ep.state.dtype == np.float32 and ep.action.shape == (393, 26)
    np.testing.assert_allclose(ep.timestamps, np.arange(393) / 30, atol=1e-5)
    assert ep.data["index"][0] == 479 and (ep.data["frame_index"] == np.arange(393)).all()
    np.testing.assert_array_equal(ep.video_frame_indices(CAM, [0, 1, 392]), [0, 1, 392])
    px = ep.frames(CAM, [0, 180])
    assert px.shape == (2, 480, 640, 3) and px.dtype == np.uint8 and px.std() > 10
    assert np.abs(px[0].astype(int) - px[1]).mean() > 1  # the robot moved in 6 s
    np.testing.assert_array_equal(ep.frames_at(CAM, [6.01]), px[1:])  # nearest frame: 180
    with pytest.raises(IndexError):
        ep.frames(CAM, [393])
    with pytest.raises(KeyError, match="not a video feature"):
        ep.frames("observation.state", [0])


def test_real_v21_missing_episode_is_a_clear_error(ds):
    with pytest.raises(FileNotFoundError, match=r"episode 0 is listed.*episode_000000.parquet.*present: \[1\]"):
        ds.episode(0)
    with pytest.raises(IndexError, match="not listed"):
        ds.episode(100)


def _to_v3(v21, out, split=200):
    """A v3.0 copy of episode 1: frames [0, split) become episode 0, the rest episode 1, in one data
    file and one (shared) video, with from_timestamp offsets, like LeRobot's v3 writer."""
    info = json.loads((v21 / "meta/info.json").read_text())
    info.update(codebase_version="v3.0", total_episodes=2,
                data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                video_path="videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
    (out / "meta/episodes/chunk-000").mkdir(parents=True)
    (out / "data/chunk-000").mkdir(parents=True)
    (out / f"videos/{CAM}/chunk-000").mkdir(parents=True)
    (out / "meta/info.json").write_text(json.dumps(info))
    t = pq.read_table(v21 / "data/chunk-000/episode_000001.parquet")
    n = t.num_rows
    ep = np.where(np.arange(n) < split, 0, 1)
    fi = np.where(ep == 0, np.arange(n), np.arange(n) - split)
    ts = (fi / 30.0).astype(np.float32)
    t = t.set_column(t.schema.get_field_index("episode_index"), "episode_index", pa.array(ep, pa.int64()))
    t = t.set_column(t.schema.get_field_index("frame_index"), "frame_index", pa.array(fi, pa.int64()))
    t = t.set_column(t.schema.get_field_index("timestamp"), "timestamp", pa.array(ts, pa.float32()))
    t = t.set_column(t.schema.get_field_index("index"), "index", pa.array(np.arange(n), pa.int64()))
    pq.write_table(t.take(np.r_[split:n, 0:split]), out / "data/chunk-000/file-000.parquet")  # rows out of order
    shutil.copyfile(v21 / f"videos/chunk-000/{CAM}/episode_000001.mp4", out / f"videos/{CAM}/chunk-000/file-000.mp4")
    rows = []
    for e, (a, b) in enumerate([(0, split), (split, n)]):
        rows.append({"episode_index": e, "tasks": ["Pick up the yellow bottle on the table."], "length": b - a,
                     "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": a, "dataset_to_index": b,
                     f"videos/{CAM}/chunk_index": 0, f"videos/{CAM}/file_index": 0,
                     f"videos/{CAM}/from_timestamp": a / 30.0, f"videos/{CAM}/to_timestamp": b / 30.0})
    pq.write_table(pa.Table.from_pylist(rows), out / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["Pick up the yellow bottle on the table."]}), out / "meta/tasks.parquet")
    return out


def test_v3_layout_matches_v21(v21, ds, tmp_path):
    v3 = LeRobotDataset(_to_v3(v21, tmp_path / "v3"))
    assert v3.version == "v3.0" and v3.episode_indices() == [0, 1] and v3.available_episodes() == [0, 1]
    ref = ds.episode(1)
    e0, e1 = v3.episode(0), v3.episode(1)
    assert (e0.length, e1.length) == (200, 193)
    np.testing.assert_array_equal(e0.state, ref.state[:200])
    np.testing.assert_array_equal(e1.action, ref.action[200:])
    np.testing.assert_array_equal(e1.video_frame_indices(CAM, [0, 5]), [200, 205])
    np.testing.assert_array_equal(e1.frames(CAM, [0]), decode_video(ds.video_file(1, CAM), [200]))
    assert e1.tasks == ["Pick up the yellow bottle on the table."]


def _copy_meta(v21, out):
    shutil.copytree(v21 / "meta", out / "meta")
    (out / "meta/info.json").chmod(0o644)
    return out


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(codebase_version="v1.6"), "codebase_version"),
    (lambda d: d.pop("fps"), "fps"),
    (lambda d: d.update(features=[]), "features"),
    (lambda d: d["features"]["action"].pop("shape"), "features.action"),
    (lambda d: d.pop("video_path"), "video_path"),
    (lambda d: d.update(chunks_size=0), "chunks_size"),
])
def test_malformed_info_json(v21, tmp_path, edit, field):
    out = _copy_meta(v21, tmp_path)
    info = json.loads((out / "meta/info.json").read_text())
    edit(info)
    (out / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError) as ei:
        LeRobotDataset(out)
    assert "info.json" in str(ei.value) and field in str(ei.value)


def test_bad_files(v21, tmp_path):
    with pytest.raises(FileNotFoundError, match="info.json"):
        LeRobotDataset(tmp_path)
    out = _copy_meta(v21, tmp_path / "a")
    (out / "meta/info.json").write_text("{not json")
    with pytest.raises(LeRobotFormatError, match="not valid JSON"):
        LeRobotDataset(out)
    out = _copy_meta(v21, tmp_path / "b")
    info = json.loads((out / "meta/info.json").read_text())
    info["features"]["action"]["names"] = [["a", "b"]]
    (out / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match="features.action.names"):
        LeRobotDataset(out).feature_names("action")
    # a data file whose rows disagree with info.json / the metadata
    (out / "data/chunk-000").mkdir(parents=True)
    (out / f"videos/chunk-000/{CAM}").mkdir(parents=True)
    (out / f"videos/chunk-000/{CAM}/episode_000001.mp4").write_bytes(b"")
    t = pq.read_table(v21 / "data/chunk-000/episode_000001.parquet")
    pq.write_table(t.slice(0, 10), out / "data/chunk-000/episode_000001.parquet")
    with pytest.raises(LeRobotFormatError, match="length 393"):
        LeRobotDataset(out).episode(1)
    (out / "data/chunk-000/episode_000001.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(LeRobotFormatError, match="unreadable parquet"):
        LeRobotDataset(out).episode(1)
    (out / "meta/episodes.jsonl").write_text('{"episode_index": 0}\n')
    with pytest.raises(LeRobotFormatError, match="line 1"):
        LeRobotDataset(out)


# ------------------------------------------------------------------ from the command line's functions
def test_build_stats_and_show_from_lerobot_v21(v21, ds, tmp_path):
    from PIL import Image

    from beingh0.data.build import build_dataset
    from beingh0.data.shards import load_index
    from beingh0.data.show import show
    from beingh0.data.stats import dataset_stats, format_stats

    out = tmp_path / "built"
    m = build_dataset("lerobot", v21, out, progress=False)  # what `beingh0 data build lerobot ROOT --out DIR` runs
    assert m["counts"]["episodes"] == 1 and m["counts"]["frames"] == 393 and m["counts"]["motion_windows"] == 0
    ep = load_index(out).read(0)
    ref = ds.episode(1)
    assert ep.episode_id == "ep000001" and ep.source == "lerobot" and not ep.hands and ep.fps == 30
    np.testing.assert_array_equal(ep.robot["observation.state"], ref.state)
    np.testing.assert_array_equal(ep.robot["action"], ref.action)
    assert ep.frames.kind == "external" and ep.frames.path == f"videos/chunk-000/{CAM}/episode_000001.mp4"
    np.testing.assert_array_equal(ep.frames.indices, np.arange(393))
    assert ep.text.instruction == "Pick up the yellow bottle on the table."
    assert ep.meta["lerobot"]["feature_names"]["action"][0] == "kLeftShoulderPitch"
    st = dataset_stats(out)
    assert st["hands"]["none"] == 1 and st["corrupt"]["corrupt"] == 0 and "none (robot) 1" in format_stats(st)
    # the LeRobot folder itself
    st = dataset_stats(v21)
    assert (st["format"], st["version"], st["episodes"], st["episodes_present"], st["frames_present"]) == ("lerobot", "v2.1", 100, 1, 393)
    assert st["features"]["observation.state"] == [26] and "100 episodes listed (1 present)" in format_stats(st)
    png = show(v21, tmp_path / "lr.png", frames=[0, 180])  # `data show ROOT` on a LeRobot folder
    im = np.asarray(Image.open(png))
    assert im.shape[1] == 2 * 640 and im.std() > 10
    png = show(out, tmp_path / "b.png", frames=[180], root=v21)  # the built dataset, frames from --root
    np.testing.assert_array_equal(np.asarray(Image.open(png))[:480], im[:480, 640:])
    with pytest.raises(UserError, match=r"episode 0 is not present.*\[1\]"):
        show(v21, tmp_path / "x.png", key="0")
    with pytest.raises(UserError, match="not present"):
        build_dataset("lerobot", v21, tmp_path / "o2", {"episodes": [0]}, progress=False)
    with pytest.raises(UserError, match="camera"):
        build_dataset("lerobot", v21, tmp_path / "o3", {"camera": "observation.state"}, progress=False)
    with pytest.raises(UserError, match="meta/info.json"):
        build_dataset("lerobot", tmp_path, tmp_path / "o4", progress=False)


def test_build_from_lerobot_v3(v21, tmp_path):
    from beingh0.data.build import build_dataset
    from beingh0.data.shards import load_index

    v3 = _to_v3(v21, tmp_path / "v3")
    build_dataset("lerobot", v3, tmp_path / "out", progress=False)
    idx = load_index(tmp_path / "out")
    e0, e1 = idx.read(0), idx.read(1)
    assert (e0.num_frames, e1.num_frames) == (200, 193)
    assert e1.frames.path == f"videos/{CAM}/chunk-000/file-000.mp4"
    np.testing.assert_array_equal(e1.frames.indices[:3], [200, 201, 202])  # the shared video's offset
    from beingh0.data.video import episode_frames

    np.testing.assert_array_equal(episode_frames(e1, [0], root=v3), decode_video(v21 / f"videos/chunk-000/{CAM}/episode_000001.mp4", [200]))
