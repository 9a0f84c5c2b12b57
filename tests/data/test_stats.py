"""Dataset statistics and their PNG report."""
import pytest

from beingh0.benchmark.data import random_source
from beingh0.data.build import build_dataset
from beingh0.data.stats import dataset_stats, format_stats, plot_stats


def test_stats_counts_and_png(tmp_path):
    build_dataset(random_source(), None, tmp_path / "a", {"episodes": 3, "seconds": 2.0, "fps": 15.0}, progress=False)
    build_dataset(random_source(), None, tmp_path / "b", {"episodes": 2, "seconds": 3.0, "fps": 30.0, "frames": "jpeg"},
                  progress=False)
    st = dataset_stats(tmp_path / "a")
    assert st["episodes"] == 3 and st["frames"] == 90 and st["hours"] == pytest.approx(6 / 3600)
    assert st["hands"] == {"left": 0, "right": 0, "both": 3, "none": 0}
    s = st["sources"]["bench-random"]
    assert s["windows"]["left"] + s["windows"]["right"] == st["motion_windows"] <= 12 and s["with_frames"] == 0
    assert sum(v for (src, t), v in st["tasks"].items() if t == "generation") > 0
    text = format_stats(st)
    assert "3 episodes" in text and "bench-random" in text and "both 3" in text
    st_b = dataset_stats(tmp_path / "b", tasks=False, verify="sha256")
    assert list(st_b["sources"]) == ["bench-random"] and st_b["sources"]["bench-random"]["with_frames"] == 2 and "tasks" not in st_b
    for s_, name in ((st, "a.png"), (st_b, "b.png")):
        assert plot_stats(s_, tmp_path / name).read_bytes()[:4] == b"\x89PNG"
