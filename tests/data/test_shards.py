"""Shards and their index: round trips, seek-by-index equals sequential read, clear errors on bad files."""
import json

import numpy as np
import pytest

from beingh0.benchmark.data import random_episode
from beingh0.data import EpisodeFormatError
from beingh0.data.episode import Episode
from beingh0.data.shards import (INDEX_FORMAT, INDEX_VERSION, ShardIndex, iter_shard, read_episode, read_members,
                                 write_json, write_shard)


def _dataset(tmp_path, frames="jpeg"):
    eps = [random_episode(i, seconds=1.0, fps=10, frames=frames, size=(17, 11)) for i in range(3)]
    eps.append(random_episode(3, seconds=0.5, fps=10, frames="none", sides=("right",)))
    members = [e.to_members() for e in eps]
    members[0][f"{eps[0].episode_id}.motion.safetensors"] = b"sidecar bytes"  # extra members travel too
    e1 = write_shard(tmp_path / "shard-000000.tar", members[:2])
    e2 = write_shard(tmp_path / "shard-000001.tar", members[2:])
    for entry, group in ((e1, eps[:2]), (e2, eps[2:])):
        for ent, ep in zip(entry["episodes"], group):
            ent.update(num_frames=ep.num_frames, fps=ep.fps, source=ep.source, hands=sorted(ep.hands),
                       duration=ep.duration, has_frames=ep.frames.kind != "none")
    write_json(tmp_path / "index.json", {"format": INDEX_FORMAT, "version": INDEX_VERSION, "shards": [e1, e2]})
    return eps, members


def _same(a: Episode, b: Episode):
    assert a.episode_id == b.episode_id and a.text == b.text and a.meta == b.meta and a.num_frames == b.num_frames
    for s in a.hands:
        for f in ("global_orient", "hand_pose", "betas", "trans", "valid", "confidence"):
            np.testing.assert_array_equal(getattr(a.hands[s], f), getattr(b.hands[s], f))
    np.testing.assert_array_equal(a.camera.intrinsics, b.camera.intrinsics)
    assert a.frames.kind == b.frames.kind and a.frames.data == b.frames.data


def test_round_trip_and_seek_equals_sequential(tmp_path):
    eps, members = _dataset(tmp_path)
    idx = ShardIndex(tmp_path, verify="sha256")
    assert len(idx) == 4 and [r.key for r in idx.refs] == [e.episode_id for e in eps]
    seq = [m for f in ("shard-000000.tar", "shard-000001.tar") for m in iter_shard(tmp_path / f)]
    assert seq == members  # sequential (WebDataset-style) read sees exactly what was written
    for i in (3, 0, 2, 1):  # random order: every read is a seek
        _same(idx.read(i), eps[i])
        assert read_members(idx.refs[i].shard, idx.refs[i].entry) == members[i]
    _same(idx.read(eps[2].episode_id), eps[2])
    sel = read_members(idx.refs[0].shard, idx.refs[0].entry, ["motion.safetensors", "episode.json"])
    assert sel[f"{eps[0].episode_id}.motion.safetensors"] == b"sidecar bytes" and len(sel) == 2
    assert idx.header(1)["text"]["instruction"] == eps[1].text.instruction


def test_deterministic_bytes(tmp_path):
    ep = random_episode(5, seconds=0.5, fps=10, frames="jpeg", size=(9, 7))
    a = write_shard(tmp_path / "a.tar", [ep.to_members()])
    b = write_shard(tmp_path / "b.tar", [ep.to_members()])
    assert a["sha256"] == b["sha256"] and (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_truncated_shard(tmp_path):
    _dataset(tmp_path)
    p = tmp_path / "shard-000001.tar"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFormatError, match=r"shard-000001.tar.*'size'"):
        ShardIndex(tmp_path)
    idx = ShardIndex(tmp_path, verify="none")  # reading past the end still names file and field
    with pytest.raises(EpisodeFormatError, match=r"shard-000001.tar.*'size'.*truncated"):
        idx.read(3)


def test_corrupt_content_and_missing_shard(tmp_path):
    _dataset(tmp_path)
    p = tmp_path / "shard-000000.tar"
    data = bytearray(p.read_bytes())
    data[700] ^= 0xFF
    p.write_bytes(bytes(data))
    ShardIndex(tmp_path)  # same size: the cheap check passes ...
    with pytest.raises(EpisodeFormatError, match=r"shard-000000.tar.*'sha256'"):
        ShardIndex(tmp_path, verify="sha256")  # ... the full one does not
    p.unlink()
    with pytest.raises(FileNotFoundError, match="shard-000000.tar"):
        ShardIndex(tmp_path)


def _edit_index(tmp_path, fn):
    ip = tmp_path / "index.json"
    idx = json.loads(ip.read_text())
    fn(idx)
    ip.write_text(json.dumps(idx))


@pytest.mark.parametrize("edit, field", [
    (lambda i: i.update(version=7), "version"),
    (lambda i: i.update(format="x"), "format"),
    (lambda i: i["shards"][0].pop("sha256"), "shards[0].sha256"),
    (lambda i: i["shards"][0]["episodes"][1].pop("fps"), "shards[0].episodes[1].fps"),
    (lambda i: i["shards"][1]["episodes"][0].update(key=i["shards"][0]["episodes"][0]["key"]), "shards[1].episodes[0].key"),
    (lambda i: next(iter(i["shards"][0]["episodes"][0]["members"].values())).__setitem__(0, 10**9), "shards[0].episodes[0].members"),
    (lambda i: i["shards"][0].update(file="../x.tar"), "shards[0].file"),
])
def test_malformed_index(tmp_path, edit, field):
    _dataset(tmp_path)
    _edit_index(tmp_path, edit)
    with pytest.raises(EpisodeFormatError) as ei:
        ShardIndex(tmp_path)
    assert "index.json" in str(ei.value) and field in str(ei.value)


def test_index_offsets_that_do_not_match_the_shard(tmp_path):
    _dataset(tmp_path)

    def shift(i):
        m = i["shards"][0]["episodes"][1]["members"]
        k = next(n for n in m if n.endswith(".arrays.safetensors"))
        m[k][0] += 512
    _edit_index(tmp_path, shift)
    idx = ShardIndex(tmp_path)
    with pytest.raises(EpisodeFormatError, match=r"shard-000000.tar.*index.members.*does not match"):
        idx.read(1)
    (tmp_path / "index.json").write_text("{broken")
    with pytest.raises(EpisodeFormatError, match=r"index.json.*not valid JSON"):
        ShardIndex(tmp_path)
    with pytest.raises(FileNotFoundError, match="no index"):
        ShardIndex(tmp_path / "nope")


def test_episode_read_error_names_member(tmp_path):
    eps, members = _dataset(tmp_path)
    idx = ShardIndex(tmp_path)
    ref = idx.refs[0]
    with pytest.raises(EpisodeFormatError, match="no member"):
        read_members(ref.shard, ref.entry, ["frames.mp4"])
    assert read_episode(ref).episode_id == eps[0].episode_id
