"""`beingh0 pretrain` end to end (tiny sizes, seconds): the synthetic default, tokenized folders with
--tokenizer, exact resume of the job, and its user errors; `beingh0 data tokenize` on the command line."""
import json

import pytest
import torch

from beingh0.cli.main import main

TINY = ["--batch-size", "2", "--eval-samples", "2", "--no-progress", "--no-plots", "--motion-seconds", "2"]


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    """A synthetic folder with frames and a tiny motion tokenizer, tokenized through the CLI."""
    from beingh0.data.synth import SynthConfig, synth_dataset
    from beingh0.tokenizer.config import TokenizerConfig
    from beingh0.tokenizer.io import save_tokenizer
    from beingh0.tokenizer.model import MotionTokenizer

    root = tmp_path_factory.mktemp("pretrain-cli")
    synth_dataset(root / "ds", 2, SynthConfig(seconds=2.0, size=(32, 32), image_format="jpeg"), seed=4, progress=False)
    torch.manual_seed(0)
    save_tokenizer(MotionTokenizer(TokenizerConfig.preset("tiny")), root / "tok")
    assert main(["data", "tokenize", str(root / "ds"), "--tokenizer", str(root / "tok"), "--quiet"]) == 0
    return root


def test_synthetic_default_two_steps(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), "--steps", "2", "--synth-episodes", "2", "--synth-seconds", "2",
                 "--synth-size", "32", "--val-episodes", "1", "--tokenizer-steps", "2", *TINY]) == 0
    text = capsys.readouterr().out
    assert "unigram baseline" in text and "held-out" in text
    rep = json.loads((out / "report.json").read_text())
    assert rep["steps"] == 2 and rep["baseline"]["unigram_entropy"] > 0 and rep["heldout"]["targets"] > 0
    hist = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in hist["train"]] == [1, 2] and all(r["targets"] > 0 and r["tokens"] > 0 for r in hist["train"])
    from beingh0.vla.model import VLA

    vla = VLA.from_pretrained(out / "model")  # the saved model loads back, motion vocabulary included
    assert vla.vocab.layout.tokens_per_block == 32


def test_exact_resume(tokenized, tmp_path):
    args = ["--data", str(tokenized / "ds"), "--tokenizer", str(tokenized / "tok"), "--schedule", "constant",
            "--ckpt-every", "2", *TINY]
    assert main(["pretrain", "--out", str(tmp_path / "a"), "--steps", "4", *args]) == 0
    assert main(["pretrain", "--out", str(tmp_path / "b"), "--steps", "2", *args]) == 0
    # the same command continues (reporting options may change)
    assert main(["pretrain", "--out", str(tmp_path / "b"), "--steps", "4", *args, "--eval-samples", "3"]) == 0
    la = [r["loss"] for r in json.loads((tmp_path / "a" / "history.json").read_text())["train"]]
    lb = [r["loss"] for r in json.loads((tmp_path / "b" / "history.json").read_text())["train"]]
    assert len(la) == 4 and la == lb
    # the run folder holds a copy of the tokenizer it was trained with (generate / eval find it from the run)
    from beingh0.data.tokenize import tokenizer_fingerprint
    from beingh0.tokenizer.io import load_tokenizer

    own = load_tokenizer(tmp_path / "a" / "motion_tokenizer" / "tokenizer")
    assert tokenizer_fingerprint(own) == tokenizer_fingerprint(load_tokenizer(tokenized / "tok"))
    # other loss settings on the same folder: refused, not silently mixed
    assert main(["pretrain", "--out", str(tmp_path / "b"), "--steps", "6", "--mask-prob", "0.9", *args]) == 2


def test_user_errors(tokenized, tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "x"), "--data", str(tokenized / "ds"), *TINY]) == 2
    assert "--tokenizer" in capsys.readouterr().err
    assert main(["pretrain", "--out", str(tmp_path / "x"), "--data", str(tokenized / "ds"), "--tokenizer",
                 str(tokenized / "tok"), "--config", "1b", *TINY]) == 2
    assert "--init" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a flag outside its range: argparse's usage error
        main(["pretrain", "--out", str(tmp_path / "x"), "--mask-prob", "2", *TINY])
    assert e.value.code == 2


def test_bench_pretrain_records(tmp_path):
    path = tmp_path / "bench.json"
    assert main(["bench", "pretrain", "--device", "cpu", "--batch", "2", "--seq-len", "64", "--repeats", "1",
                 "--json", str(path)]) == 0
    recs = json.loads(path.read_text())
    assert [r["impl"] for r in recs] == ["transformers_loss", "beingh0"]
    for r in recs:
        for k in ("op", "device", "dtype", "shape", "median_ms", "p10_ms", "p90_ms", "peak_mem_mb", "baseline",
                  "speedup_vs_baseline", "max_abs_err_vs_reference", "tokens_per_s", "mfu", "flops_per_token"):
            assert k in r
        assert r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1
    assert recs[1]["max_abs_err_vs_reference"] < 1e-4
