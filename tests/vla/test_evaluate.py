"""The evaluation harness end to end on a tiny random-weight VLA and a tiny motion tokenizer."""
import json

import numpy as np
import pytest
import torch

from beingh0.cli.main import main
from beingh0.core.errors import UserFileError, UserValueError
from beingh0.data.synth import SynthConfig, synth_dataset
from beingh0.data.tokenize import tokenize_dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from beingh0.tokenizer.config import TokenizerConfig
    from beingh0.tokenizer.model import MotionTokenizer
    from beingh0.vla.model import VLA

    root = tmp_path_factory.mktemp("vla-eval")
    torch.manual_seed(0)
    tok = MotionTokenizer(TokenizerConfig.preset("tiny")).eval()
    synth_dataset(root / "val", 2, SynthConfig(seconds=2.0, size=(32, 24), image_format="jpeg"), seed=5, progress=False)
    synth_dataset(root / "train", 2, SynthConfig(seconds=2.0, frames=False), seed=6, progress=False)
    tokenize_dataset(root / "val", tok, progress=False)
    vla = VLA.from_preset("tiny", layout=tok.layout, seed=0)
    return vla, tok, root


def test_head_texts_cover_half_of_the_training_samples(setup):
    from beingh0.data.instructions import dataset_instruction_samples
    from beingh0.vla.evaluate import head_texts, task_text

    _, _, root = setup
    heads = head_texts([root / "train"], 0.5)
    texts = [task_text(s) for s in dataset_instruction_samples(root / "train") if s["task"] == "generation"]
    texts = [t for t in texts if t]
    covered = sum(t in heads["generation"] for t in texts) / len(texts)
    assert 0.5 <= covered < 1.0
    # a head text is at least as frequent as every tail text
    counts = {t: texts.count(t) for t in set(texts)}
    assert min(counts[t] for t in heads["generation"]) >= max(c for t, c in counts.items() if t not in heads["generation"])


def test_end_to_end(setup, tmp_path):
    from beingh0.vla.evaluate import EvalConfig, evaluate, format_tables, write_record
    from beingh0.vla.retrieval import RetrievalConfig, RetrievalModel

    vla, tok, root = setup
    torch.manual_seed(0)
    ret = RetrievalModel(RetrievalConfig(width=32, layers=1, heads=2, embed_dim=8)).eval()
    cfg = EvalConfig(samples=3, batch_size=3, examples=1, num_threads=1)
    rec = evaluate(vla, tok, [root / "val"], cfg, retrieval=ret, train_folders=[root / "train"], progress=False)
    vis = rec["tasks"]["visual"]
    assert set(vis) == {"block", "free", "soft"}
    assert vis["block"]["all"]["valid_rate"] == 100.0 and vis["soft"]["all"]["valid_rate"] == 100.0
    assert 0.0 <= vis["free"]["all"]["valid_rate"] <= 100.0
    for mode in ("block", "soft"):
        a = vis[mode]["all"]
        assert a["samples"] == 3 and a["frames"] > 0
        assert all(np.isfinite(a[k]) and a[k] > 0 for k in ("mpjpe", "mwte", "pa_mpjpe"))
        assert a["pa_mpjpe"] < a["mpjpe"]
        assert "m2t_r3" in a and "fid" in a and a["fid"] >= 0
    ctx = rec["tasks"]["contextual"]
    assert "note" in ctx or ctx["block"]["all"]["valid_rate"] == 100.0
    tr = rec["tasks"]["translation"]["free"]["all"]
    assert tr["samples"] >= 1 and "t2m_r3" in tr
    # the same samples in every mode
    s = rec["samples"]["visual"]
    assert all({"block", "free", "soft"} <= set(r) for r in s)
    table = format_tables(rec)
    assert "MPJPE" in table and "soft" in table and "Table 2" in table
    js, png = write_record(rec, tmp_path / "out")
    assert json.loads(js.read_text())["tasks"]["visual"]["block"]["all"]["valid_rate"] == 100.0
    assert png.stat().st_size > 1000


def test_bad_inputs(setup, tmp_path, capsys):
    from beingh0.vla.evaluate import EvalConfig, evaluate, load_checkpoint

    vla, tok, root = setup
    with pytest.raises(UserFileError, match="does not exist"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(UserFileError, match="neither a pretraining run"):
        load_checkpoint(tmp_path)
    with pytest.raises(UserFileError, match="not a dataset folder"):
        evaluate(vla, tok, [tmp_path], EvalConfig(samples=1), progress=False)
    with pytest.raises(UserValueError):
        EvalConfig(modes=("greedy",))
    assert main(["eval", "--data", str(root / "val")]) == 2
    assert main(["eval", "--checkpoint", str(tmp_path / "nope"), "--data", str(root / "val")]) == 2
    assert main(["eval", "train-retrieval", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("beingh0: error: ") for e in err)


def test_soft_context_placement(setup):
    from beingh0.vla.evaluate import EvalConfig, evaluate

    vla, tok, root = setup
    cfg = EvalConfig(modes=("soft",), tasks=("visual",), samples=2, min_seconds=1, max_seconds=2,
                     soft_placement="context", examples=0, num_threads=1)
    rec = evaluate(vla, tok, [root / "val"], cfg, progress=False)
    a = rec["tasks"]["visual"]["soft"]["all"]
    assert a["valid_rate"] == 100.0 and np.isfinite(a["mpjpe"]) and a["frames"] > 0
    assert "m2t_r3" not in a  # no retrieval model: no R@3 / FID
