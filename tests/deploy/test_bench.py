"""The end-to-end latency benchmark writes one record per backend (skips say why)."""
from __future__ import annotations

import json


def test_deploy_bench_records(tmp_path):
    from beingh0.benchmark.deploy import run_deploy_bench

    recs = run_deploy_bench(preset="tiny", backends=["eager", "tensorrt"], repeats=3, min_time_s=0, chunk=4,
                            image_hw=(48, 64), json_path=tmp_path / "r.json", quiet=True)
    assert [r["impl"] for r in recs] == ["eager", "tensorrt"]
    e, t = recs
    assert e["op"] == "policy_e2e" and e["repeats"] == 3 and 0 < e["p50_ms"] <= e["p99_ms"]
    assert e["max_abs_err_vs_reference"] == 0.0 and e["speedup_vs_baseline"] == 1.0 and e["preprocess_ms"] > 0
    assert e["shape"]["policy"] == "tiny" and e["shape"]["chunk"] == 4 and e["device_name"]
    assert "skipped" in t and "p50_ms" not in t
    assert json.loads((tmp_path / "r.json").read_text())[0]["impl"] == "eager"
