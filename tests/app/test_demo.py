"""The main job's wiring: stage order and commands, argument errors, the report and summary from stage results.

The whole job runs end to end in CI's bare stage (``beingh0 demo --minutes 0.3`` on a clean install)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from beingh0.app.demo import DEMO_STAGES, build_report, demo_stages, run_demo, summary_text  # noqa: E402
from beingh0.app.stages import Context  # noqa: E402
from beingh0.core.errors import UserError  # noqa: E402


def _png(path):
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1], [1, 0])
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def test_scales_are_the_vla_presets():
    from beingh0.app.demo import SCALES
    from beingh0.vla.config import PRESETS

    assert SCALES == tuple(PRESETS)


def test_stage_order_and_each_stage_names_its_own_command():
    assert DEMO_STAGES == ("tokenizer", "pretrain", "generate", "evaluate", "posttrain", "posttrain-real", "export", "control")
    for st in demo_stages():
        assert st.command.startswith("beingh0 "), st
    shares = sum(st.share for st in demo_stages())
    assert 0.5 < shares <= 1.0


@pytest.mark.parametrize("kw, match", [
    ({"scale": "3b"}, "--scale"),
    ({"scale": "1b"}, "--init"),
    ({"init": "/nonexistent/ckpt"}, "no such checkpoint"),
    ({"minutes": 0}, "--minutes"),
    ({"stages": ["pretrain", "bogus"]}, "unknown stage"),
])
def test_argument_errors_are_one_line(tmp_path, kw, match):
    with pytest.raises(UserError, match=match):
        run_demo(tmp_path / "o", progress=False, **kw)


def _results(tmp_path):
    row = {"name": "synthetic held-out", "mpjpe_mm": 9.3, "pa_mpjpe_mm": 1.0, "wrist_mm": 9.1, "utilisation": 0.63}
    ev = {"l1_mean": 0.0123, "baseline_mean": 0.0301}
    return {
        "tokenizer": {"rows": [row], "figures": [_png(tmp_path / "tok.png")]},
        "pretrain": {"steps": 100, "heldout": {"loss": 1.5, "motion_acc": 0.5}, "train": {"loss": 1.4, "motion_acc": 0.55},
                     "baseline": {"unigram_entropy": 4.3, "motion_majority_acc": 0.09}, "figures": []},
        "generate": {"instruction": "carry the mug", "figures": [_png(tmp_path / "strip.png")]},
        "evaluate": {"table": "Table 3 ...", "figures": []},
        "posttrain": {"steps": 50, "eval": ev, "split": "held-out episodes", "figures": [_png(tmp_path / "traj.png")]},
        "posttrain-real": None,
        "export": {"onnx": "policy.onnx", "bytes": 2**20, "nodes": 475, "ort_max_abs_err": 2e-7,
                   "tensorrt_coverage": "all supported", "tensorrt_engine": "skipped"},
        "control": {"stats": {"steps": 200, "inferences": 25, "inference_ms_p50": 19.8, "inference_ms_p99": 30.0,
                              "late_inferences": 0, "held_steps": 0, "clipped_steps": 0, "overruns": 0},
                    "figures": [_png(tmp_path / "timeline.png")]},
    }


def test_report_and_summary_from_stage_results(tmp_path):
    ctx = Context(tmp_path / "run", minutes=1.0, options={"scale": "tiny", "seed": 0}, results=_results(tmp_path))
    page = build_report(ctx, 65.0)
    html = page.read_text()
    for title in ("Motion tokenizer", "VLA pretraining", "Generated motion", "Evaluation", "synthetic Inspire-hand",
                  "Export", "Control loop"):
        assert title in html
    assert "real G1" not in html  # a stage that did not run has no section
    assert html.count("data:image/png;base64,") == 4
    assert "<td>0.0123</td>" in html and "<td>0.0301</td>" in html
    text = summary_text(ctx.results, 65.0, page)
    assert "L1 0.0123 vs repeat-state 0.0301" in text and "p50 19.8 ms" in text and "1.1 min" in text
