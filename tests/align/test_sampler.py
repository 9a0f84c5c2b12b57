"""The balancing sampler evens out a skewed synthetic distribution of hand positions across sources."""
import math

import numpy as np
import pytest

from beingh0.align import OFFICIAL_TARGET, BalanceConfig, wrist_features
from beingh0.align.sampler import BalanceSampler, histogram, plot_balance, total_variation


def _source(rng, n, uv, spread, z, z_spread):
    K = OFFICIAL_TARGET.frame
    u, v = rng.normal(uv[0], spread, n), rng.normal(uv[1], spread, n)
    zz = np.clip(rng.normal(z, z_spread, n), 0.25, 1.2)
    return np.stack([(u * 1920 - 0.5 - K.cx) / K.fx * zz, (v * 1080 - 0.5 - K.cy) / K.fy * zz, zz], -1)


@pytest.fixture(scope="module")
def skewed():
    rng = np.random.default_rng(0)
    a = _source(rng, 100, (0.35, 0.65), 0.04, 0.45, 0.03)     # small source: hands bottom-left, close
    b = _source(rng, 200, (0.5, 0.5), 0.15, 0.6, 0.1)         # large source: spread out
    c = _source(rng, 100, (0.62, 0.4), 0.06, 0.7, 0.05)       # another narrow one
    return np.concatenate([a, b, c]), np.array(["A"] * 100 + ["B"] * 200 + ["C"] * 100)


def test_sampler_evens_out_sources(skewed, tmp_path):
    trans, src = skewed
    # wrist-only hands: a small stand-in hand, no parallax cap (the sampler is under test, not the rules)
    cfg = BalanceConfig(scale_range=(0.75, 1.33), angle_range=(-0.6, 0.6), depth_range=(0.2, 1.2), hand_radius=0.02,
                        max_parallax_px=math.inf)
    s = BalanceSampler(cfg, bins=(6, 6, 5), candidates=16, iterations=3).fit(trans, src)
    before = wrist_features(trans)
    params, after = s.balance(trans, src, np.random.default_rng(1))
    assert len(params) == len(trans) and not all(p.is_identity for p in params)
    tv_b, tv_a = s.distances(before, src), s.distances(after, src)
    reach_b, reach_a = s.distances(before, src, reachable=True), s.distances(after, src, reachable=True)
    # every source moves towards the common target (measured: mean TV 0.61 -> 0.43, and 0.50 -> 0.23 against the
    # part of the target each source can reach with these ranges)
    assert all(tv_a[k] < tv_b[k] for k in s.sources), (tv_b, tv_a)
    assert np.mean(list(tv_a.values())) < 0.8 * np.mean(list(tv_b.values())), (tv_b, tv_a)
    assert np.mean(list(reach_a.values())) < 0.65 * np.mean(list(reach_b.values())), (reach_b, reach_a)
    # the sources also get closer to each other (pairwise total variation)
    hb = {k: histogram(before[src == k], s.bins, s.depth_range) for k in s.sources}
    ha = {k: histogram(after[src == k], s.bins, s.depth_range) for k in s.sources}
    pair = lambda h: np.mean([total_variation(h[x], h[y]) for x, y in (("A", "B"), ("A", "C"), ("B", "C"))])
    assert pair(ha) < pair(hb) - 0.1, (pair(hb), pair(ha))
    png = plot_balance(before, after, src, tmp_path / "balance.png", sampler=s)
    assert png.stat().st_size > 10_000


def test_sampler_errors(skewed):
    trans, src = skewed
    s = BalanceSampler()
    with pytest.raises(RuntimeError, match="not fitted"):
        s.weight("A", trans[:1])
    with pytest.raises(ValueError, match="z > 0"):
        BalanceSampler().fit(trans * [1, 1, -1], src)
    with pytest.raises(ValueError, match="trans \\(N, 3\\)"):
        BalanceSampler().fit(trans[:, :2], src)
    s.fit(trans, src)
    with pytest.raises(ValueError, match="unknown source"):
        s.weight("Z", trans[:1])
    with pytest.raises(ValueError, match="target_dist"):
        BalanceSampler(target_dist="flat")
