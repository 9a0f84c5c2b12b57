"""Corrupt data never reaches training silently: shards with flipped bytes, sidecars with NaN or
1e30, malformed headers, indexes with impossible windows; and user mistakes get one-line errors."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from beingh0.benchmark.data import random_source
from beingh0.core.errors import UserError, UserValueError
from beingh0.data.build import build_dataset
from beingh0.data.episode import EpisodeFormatError
from beingh0.data.integrity import scan_dataset
from beingh0.data.loader import ShardDataset
from beingh0.data.shards import EpisodeLookupError, ShardIndex
from beingh0.data.stats import dataset_stats, format_stats, plot_stats


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity") / "ds"
    build_dataset(random_source(), None, root, {"episodes": 3, "seconds": 2.0, "fps": 24.0}, episodes_per_shard=2,
                  progress=False)
    return root


@pytest.fixture
def ds(clean, tmp_path):
    return Path(shutil.copytree(clean, tmp_path / "ds"))


def _member(root, i, suffix):
    ref = ShardIndex(root).refs[i]
    off, size = ref.entry["members"][f"{ref.key}.{suffix}"]
    return ref, off, size


def _patch(root, i, suffix, fn):
    """Replace episode i's member in place by fn(old bytes) (same length: the index stays valid)."""
    ref, off, size = _member(root, i, suffix)
    buf = bytearray(ref.shard.read_bytes())
    new = fn(bytes(buf[off:off + size]))
    assert len(new) == size
    buf[off:off + size] = new
    ref.shard.write_bytes(bytes(buf))
    return ref


def _edit_header(fn):
    def patch(old):
        h = json.loads(old)
        fn(h)
        new = json.dumps(h, separators=(",", ":"), sort_keys=True).encode()  # compact: fits, pad with spaces
        return new + b" " * (len(old) - len(new))
    return patch


def _edit_sidecar(fn):
    from safetensors.numpy import load, save

    def patch(old):
        a = load(old)
        fn(a)
        return save(a, metadata={"format": "beingh0.motion/1"})
    return patch


def _samples(root, kind="motion"):
    d = ShardDataset(root, kind=kind)
    return [d[i] for i in range(len(d))]


def test_clean_dataset_passes(clean):
    assert scan_dataset(clean) == {"checked": 3, "corrupt": 0, "errors": []}
    assert all(np.isfinite(s["features"].numpy()).all() for s in _samples(clean))


def test_flipped_bytes_in_a_shard_never_give_nan_features(ds):
    def flip(old):  # 64 bytes in the float data of the sidecar become 0xff (NaN)
        b = bytearray(old)
        mid = len(b) // 2
        b[mid:mid + 64] = b"\xff" * 64
        return bytes(b)
    ref = _patch(ds, 0, "motion.safetensors", flip)
    ShardIndex(ds)  # sizes still agree with the index: only content checks can catch it
    with pytest.raises(EpisodeFormatError, match=rf"{ref.shard}\[{ref.key}\].*field 'motion\.\w+\.\w+'.*NaN"):
        _samples(ds)
    st = dataset_stats(ds, tasks=False)
    assert st["corrupt"]["corrupt"] == 1 and ref.key in st["corrupt"]["errors"][0]
    assert "CORRUPT: 1 of 3 episodes" in format_stats(st)


@pytest.mark.parametrize("name, value", [("trans", np.nan), ("trans", 1e30), ("joints", 1e30), ("hand_pose", -1e30),
                                         ("global_orient", np.inf), ("betas", 1e30)])
def test_sidecar_with_nan_or_huge_values(ds, name, value):
    def edit(a):
        k = next(k for k in sorted(a) if k.endswith("." + name))
        a[k].reshape(-1)[1] = value
    _patch(ds, 1, "motion.safetensors", _edit_sidecar(edit))
    with pytest.raises(EpisodeFormatError, match=rf"field 'motion\.(left|right)\.{name}'"):
        _samples(ds)
    assert scan_dataset(ds)["corrupt"] == 1


@pytest.mark.parametrize("edit, field", [
    (lambda h: h.update(fps=float("nan")), "fps"),
    (lambda h: h.update(fps=-24.0), "fps"),
    (lambda h: h.update(fps=20.0), "fps"),  # valid, but not what the index and the sidecar were built from
    (lambda h: h.update(num_frames=h["num_frames"] + 1), "num_frames"),
    (lambda h: h.update(text=None), "text"),
    (lambda h: h["text"].pop("segments"), "text.segments"),
    (lambda h: h.pop("source"), "source"),
])
def test_motion_samples_validate_the_episode_header(ds, edit, field):
    ref = _patch(ds, 2, "episode.json", _edit_header(edit))
    with pytest.raises(EpisodeFormatError) as ei:
        _samples(ds, kind="motion")
    assert str(ref.shard) in str(ei.value) and f"field '{field}'" in str(ei.value)
    assert isinstance(ei.value, UserValueError)


def test_sidecar_frames_must_match_the_index(ds):
    p = ds / "index.json"
    idx = json.loads(p.read_text())
    e = idx["shards"][0]["episodes"][0]
    side = sorted(e["motion"]["frames"])[0]
    e["motion"]["frames"][side] -= 1  # still within every bound the index alone can check
    p.write_text(json.dumps(idx))
    with pytest.raises(EpisodeFormatError, match=rf"field 'motion\.{side}\.valid'.*the index says"):
        _samples(ds)


@pytest.mark.parametrize("edit, field", [
    (lambda e: e["motion"]["windows"].update(right=[[0, 3e8]]), "motion.windows.right"),
    (lambda e: e["motion"]["windows"].update(right=[[0, 300_000_000]]), "motion.windows.right"),
    (lambda e: e["motion"]["windows"].update(right=[[2, 1]]), "motion.windows.right"),
    (lambda e: e["motion"]["frames"].update(right=10**9), "motion.frames.right"),
    (lambda e: e.update(num_frames=10**9, duration=10**9 / 24.0), "num_frames"),
    (lambda e: e.update(fps=float("nan")), "fps"),
    (lambda e: e["motion"].update(member="x.motion.safetensors"), "motion.member"),
])
def test_index_motion_entries_are_bounded(ds, edit, field):
    p = ds / "index.json"
    idx = json.loads(p.read_text())
    edit(idx["shards"][0]["episodes"][0])
    p.write_text(json.dumps(idx))
    with pytest.raises(EpisodeFormatError) as ei:
        ShardDataset(ds)
    assert "index.json" in str(ei.value) and field in str(ei.value)


def test_episode_lookup_and_broken_headers_are_user_errors(ds):
    idx = ShardIndex(ds)
    for key in (99, "99", -4, "nope"):
        with pytest.raises(EpisodeLookupError, match=r"3 episodes|position 0\.\.2") as ei:
            idx.read(key)
        assert isinstance(ei.value, UserError) and "\n" not in str(ei.value) and not str(ei.value).startswith("'")
    assert idx.read("2").episode_id == idx.read(-1).episode_id == idx.refs[2].key
    ref = _patch(ds, 1, "episode.json", lambda old: b"{" + b"x" * (len(old) - 1))
    with pytest.raises(EpisodeFormatError, match=rf"{ref.shard}\[{ref.key}\]: field 'episode.json': not valid JSON"):
        idx.header(1)
    with pytest.raises(EpisodeFormatError, match="episode.json"):
        idx.read(1)


def test_stats_reports_corrupt_episodes_and_counts_the_rest(ds):
    ref = _patch(ds, 0, "episode.json", _edit_header(lambda h: h.update(text=None)))
    st = dataset_stats(ds)  # text: null used to end in a TypeError traceback
    c = st["corrupt"]
    assert c["checked"] == 3 and c["corrupt"] == 1 and f"{ref.shard}[{ref.key}]: field 'text'" in c["errors"][0]
    assert sum(st["tasks"].values()) > 0  # the two good episodes still count
    text = format_stats(st)
    assert "CORRUPT: 1 of 3 episodes" in text and "field 'text'" in text
    assert "no corruption found" in format_stats(dataset_stats(ds.parent / "ds", tasks=False, check=False) | {
        "corrupt": {"checked": 3, "corrupt": 0, "errors": []}})


def test_stats_png_writes_exactly_the_path_given(clean, tmp_path):
    st = dataset_stats(clean, tasks=False)
    out = tmp_path / "outdir"  # no suffix: written as is, not as outdir.png
    assert plot_stats(st, out) == out and out.read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "outdir.png").exists()
    folder = tmp_path / "folder"
    folder.mkdir()
    got = plot_stats(st, folder)
    assert got == folder / "stats.png" and got.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserValueError, match=r"\.png"):
        plot_stats(st, tmp_path / "x.jpg")


def test_data_layer_never_resolves_paths_from_its_install_location():
    import beingh0.data as data

    pkg = Path(data.__file__).parent
    for f in pkg.rglob("*.py"):
        src = f.read_text()
        assert "__file__" not in src and "../shared" not in src and "parents[" not in src, f


def test_random_byte_flips_in_the_sidecar_never_give_nan(clean, tmp_path):
    """64 random flipped bytes in a sidecar are always caught; even a single flip (which can give
    plausible finite numbers, found only by --verify hashing) never yields NaN or inf features."""
    rng = np.random.default_rng(0)
    ref = ShardIndex(clean).refs[0]
    off, size = ref.entry["members"][ref.entry["motion"]["member"]]
    data_start = off + 8 + int.from_bytes(ref.shard.read_bytes()[off:off + 8], "little")  # past the safetensors header
    caught = {1: 0, 64: 0}
    for n_flip in (1, 64):
        for trial in range(10):
            root = Path(shutil.copytree(clean, tmp_path / f"f{n_flip}_{trial}"))
            shard = root / ref.shard.name
            buf = bytearray(shard.read_bytes())
            for pos in rng.choice(np.arange(data_start, off + size), n_flip, replace=False):
                buf[pos] ^= int(rng.integers(1, 256))
            shard.write_bytes(bytes(buf))
            try:
                feats = [s["features"].numpy() for s in _samples(root)]
            except EpisodeFormatError as e:
                assert f"{shard}[{ref.key}]" in str(e)
                caught[n_flip] += 1
                continue
            assert all(np.isfinite(f).all() for f in feats)
    assert caught[64] == 10
