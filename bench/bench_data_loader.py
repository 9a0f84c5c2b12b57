"""pytest-benchmark: data loader throughput (motion-only and image samples).

    PYTHONPATH=. python -m pytest bench/bench_data_loader.py --benchmark-only
Full report with JSON records: ``beingh0 bench data --json bench/results/data_loader_<machine>_<date>.json``.
"""
import pytest

from beingh0.benchmark.data import random_source
from beingh0.data.build import build_dataset
from beingh0.data.loader import ResumableLoader, ShardDataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("bench") / "ds"
    build_dataset(random_source(), None, r, {"episodes": 16, "seconds": 10.0, "frames": "mp4"}, episodes_per_shard=8,
                  progress=False)
    return r


@pytest.mark.parametrize("kind", ["motion", "image"])
def test_epoch(benchmark, root, kind):
    ds = ShardDataset(root, kind=kind)
    loader = ResumableLoader(ds, batch_size=64)

    def epoch():
        return sum(len(b["index"]) for b in loader)

    n = benchmark(epoch)
    assert n == len(ds)
    if getattr(benchmark, "stats", None):  # None under --benchmark-disable
        benchmark.extra_info["samples_per_s"] = n / benchmark.stats.stats.median
