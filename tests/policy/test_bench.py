"""``bench policy``: records in the bench JSON layout, end-to-end output equal to forward_core's."""
from beingh0.benchmark.policy import policy_latency

from .conftest import make_policy


def test_policy_latency_records():
    recs = policy_latency(make_policy(), image_hw=(24, 32), repeats=2, threads=1)
    assert [r["impl"] for r in recs] == ["forward_core", "predict_action_chunk"]
    for r in recs:
        assert r["op"] == "policy_forward" and r["median_ms"] > 0 and r["p10_ms"] <= r["p90_ms"]
        assert r["shape"]["chunk"] == [4, 4] and r["baseline"] == "forward_core" and "device_name" in r
    assert recs[1]["max_abs_err_vs_reference"] < 1e-5  # the preprocessing path feeds the same tensors
