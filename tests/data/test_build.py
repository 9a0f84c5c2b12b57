"""Building datasets: deterministic across worker counts, failing items named, Ray, the CLI."""
import json

import pytest

from beingh0.core.errors import UserValueError

from beingh0.benchmark.data import random_source
from beingh0.data.build import BuildError, build_dataset
from beingh0.data.shards import ShardIndex

OPTS = {"episodes": 5, "seconds": 1.4, "fps": 20.0}


def _digest(root):
    idx = json.loads((root / "index.json").read_text())
    return [(s["file"], s["sha256"]) for s in idx["shards"]], idx


def test_deterministic_across_worker_counts(tmp_path):
    a = build_dataset(random_source(), None, tmp_path / "a", OPTS, episodes_per_shard=2, workers=1, progress=False)
    b = build_dataset(random_source(), None, tmp_path / "b", OPTS, episodes_per_shard=2, workers=2, progress=False)
    assert a == b and a["counts"]["episodes"] == 5 and a["counts"]["shards"] == 3
    da, ia = _digest(tmp_path / "a")
    db, ib = _digest(tmp_path / "b")
    assert da == db and ia == ib
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    idx = ShardIndex(tmp_path / "a", verify="sha256")
    e = idx.refs[0].entry
    assert e["motion"]["member"] in e["members"] and e["motion"]["frames"]["left"] == 21  # 28 frames at 20 FPS -> 15 FPS
    assert e["hands"] == ["left", "right"] and e["has_frames"] is False and e["text"]["segments"] > 0
    with pytest.raises(FileExistsError, match="overwrite"):
        build_dataset(random_source(), None, tmp_path / "a", OPTS, progress=False)
    build_dataset(random_source(), None, tmp_path / "a", dict(OPTS, episodes=2), overwrite=True, progress=False)
    assert len(ShardIndex(tmp_path / "a")) == 2 and not (tmp_path / "a" / "shard-000001.tar").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_item_is_named(tmp_path, workers):
    opts = dict(OPTS, fail_item=3)
    with pytest.raises(BuildError, match=r"(?s)item .3.*on purpose.*--skip-errors"):
        build_dataset(random_source(), None, tmp_path / "x", opts, episodes_per_shard=2, workers=workers, progress=False)
    m = build_dataset(random_source(), None, tmp_path / "y", opts, episodes_per_shard=2, workers=workers,
                      skip_errors=True, progress=False)
    assert m["counts"]["episodes"] == 4 and m["skipped"][0]["item"] == "3" and "on purpose" in m["skipped"][0]["error"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown source"):
        build_dataset("no-such-source", None, tmp_path / "z")
    with pytest.raises(ValueError, match="episodes_per_shard"):
        build_dataset(random_source(), None, tmp_path / "z", OPTS, episodes_per_shard=0)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "f.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a beingh0 dataset"):
        build_dataset(random_source(), None, tmp_path / "other", OPTS, overwrite=True, progress=False)


def test_ray_backend_matches_process(tmp_path):
    ray = pytest.importorskip("ray")
    try:
        m = build_dataset(random_source(), None, tmp_path / "r", dict(OPTS, episodes=2), episodes_per_shard=1,
                          workers=1, backend="ray", progress=False)
    finally:
        ray.shutdown()
    p = build_dataset(random_source(), None, tmp_path / "p", dict(OPTS, episodes=2), episodes_per_shard=1, progress=False)
    assert m == p and _digest(tmp_path / "r")[0] == _digest(tmp_path / "p")[0]


def test_cli_build_and_stats(tmp_path, monkeypatch, capsys):
    import beingh0.data.build as build_mod
    from beingh0.cli.main import main

    src = random_source()
    monkeypatch.setattr(build_mod, "get_source", lambda name: src if name == src.name else (_ for _ in ()).throw(UserValueError(f"unknown source {name!r}")))
    out = tmp_path / "ds"
    rc = main(["data", "build", "bench-random", "--out", str(out), "--option", "episodes=3", "--option", "seconds=2.1",
               "--episodes-per-shard", "2", "--quiet"])
    assert rc == 0 and "3 episodes in 2 shards" in capsys.readouterr().out
    rc = main(["data", "stats", str(out), "--png", str(tmp_path / "s.png")])
    text = capsys.readouterr().out
    assert rc == 0 and "bench-random" in text and "instruction samples: generation" in text
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["data", "build", "nope", "--out", str(tmp_path / "n")]) == 2
    assert "unknown source" in capsys.readouterr().err
    assert main(["data", "build", "bench-random", "--out", str(tmp_path / "n"), "--option", "novalue"]) == 2


def test_every_registered_source_builds(tmp_path):
    from beingh0.data.sources import sources

    for name, src in sources().items():
        try:
            items = src.list_items(None, {})
        except (ValueError, TypeError, FileNotFoundError, OSError):
            items = []
        if not items:
            continue  # sources that need a data folder are exercised by their own tests
        m = build_dataset(name, None, tmp_path / name, {}, max_items=1, progress=False)
        assert m["counts"]["episodes"] >= 1
