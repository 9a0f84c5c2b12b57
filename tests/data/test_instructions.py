"""Instruction templates and samples; balanced subsets hit their targets."""
import string

import numpy as np
import pytest

from beingh0.benchmark.data import random_episode
from beingh0.data.balance import balanced_subset, cell_targets, distribution, plot_distribution, report_table, target_shares
from beingh0.data.instructions import (REQUIRED_FIELDS, TASKS, TEMPLATES, MotionRef, check_sample, episode_view,
                                       instruction_samples, motion_blocks, parse_placeholders, render)


def test_about_twenty_templates_per_task_and_every_one_renders():
    fields = {"instruction": "pick up the cup", "duration": "3 seconds", "hand": "the left hand",
              "motion": "<MOTION:left:0-3s>", "history": "<MOTION:left:0-2s>", "history_duration": "2 seconds",
              "future_duration": "1 second"}
    for task in TASKS:
        assert 18 <= len(TEMPLATES[task]) <= 24 and len(set(TEMPLATES[task])) == len(TEMPLATES[task])
        for i, t in enumerate(TEMPLATES[task]):
            used = {f for _, f, _, _ in string.Formatter().parse(t) if f}
            assert set(REQUIRED_FIELDS[task]) <= used, (task, i)  # explicit duration, hand, motion/instruction
            out = render(task, i, **fields)
            assert "{" not in out and out.startswith("<IMAGE>")
            assert "second" in out  # the duration is stated in words
            parse_placeholders(out)
    with pytest.raises(ValueError, match="needs field"):
        render("generation", 0, hand="x")


def test_placeholder_grammar():
    refs = parse_placeholders("<IMAGE> a <MOTION:both:1-3s> b <MOTION:right:0-1s>")
    assert refs == ["<IMAGE>", MotionRef("both", 1, 3), MotionRef("right", 0, 1)]
    assert motion_blocks(refs[1]) == [(1, "left"), (1, "right"), (2, "left"), (2, "right")]
    for bad in ("<MOTION:up:0-2s>", "<MOTION:left:3-1s>", "<MOTION:left:0-2>", "<IMAGE:x>"):
        with pytest.raises(ValueError, match="placeholder"):
            parse_placeholders(f"x {bad} y")


def test_samples_from_episodes_are_consistent():
    for seed, sides in ((1, ("left", "right")), (2, ("right",))):
        ep = random_episode(seed, seconds=5.5, fps=10, sides=sides)
        view = episode_view(ep)
        samples = instruction_samples(view, seed=0)
        assert samples == instruction_samples(view, seed=0)  # deterministic
        assert {s["task"] for s in samples} == set(TASKS)
        for s in samples:
            check_sample(s, ep.duration)
            assert s["episode"] == ep.episode_id and s["duration"] >= 1
            if len(sides) == 1:
                assert s["hand"] == "right"
        gen = [s for s in samples if s["task"] == "generation" and s["t0"] == 0 and s["hand"] == "both"]
        if len(sides) == 2:
            assert gen and gen[0]["response"] == "<MOTION:both:0-5s>" and "5 seconds" in gen[0]["prompt"]
            assert {s["hand"] for s in samples} == {"left", "right", "both"}
        pred = [s for s in samples if s["task"] == "prediction"]
        for s in pred:
            (h,) = [r for r in parse_placeholders(s["prompt"]) if isinstance(r, MotionRef)]
            (f,) = parse_placeholders(s["response"])
            assert h.start == 0 and f.start == h.stop and f.stop == s["duration"] and s["image_time"] == s["t0"] + h.stop
        trans = [s for s in samples if s["task"] == "translation"]
        assert all("<MOTION:" not in s["response"] for s in trans)


def _records(rng, counts):
    return [{"source": s, "task": t} for (s, t), n in counts.items() for _ in range(n)]


def test_balanced_subset_hits_targets():
    rng = np.random.default_rng(0)
    counts = {("egodex", t): 5000 for t in TASKS}
    counts.update({("taco", "generation"): 800, ("taco", "translation"): 700, ("taco", "prediction"): 900,
                   ("hoi4d", "generation"): 120, ("hoi4d", "translation"): 2000, ("hoi4d", "prediction"): 1500})
    recs = _records(rng, counts)
    sub = balanced_subset(recs, 3000, seed=1)
    assert len(sub) == 3000 and len(set(sub.tolist())) == 3000
    d = distribution([recs[i] for i in sub])
    assert d[("hoi4d", "generation")] == 120  # a short cell gives all it has ...
    full = [c for c in counts if c != ("hoi4d", "generation")]
    vals = [d[c] for c in full]
    assert max(vals) - min(vals) <= 1  # ... and the others share the rest evenly
    # configurable proportions: 2:1:1 over sources, generation twice as likely as the others
    sw, tw = {"egodex": 2, "taco": 1, "hoi4d": 1}, {"generation": 2, "translation": 1, "prediction": 1}
    sub = balanced_subset(recs, 2000, source_weights=sw, task_weights=tw, seed=2)
    d = distribution([recs[i] for i in sub])
    tgt = target_shares(["egodex", "taco", "hoi4d"], TASKS, sw, tw)
    short = {c for c in tgt if tgt[c] * 2000 > counts[c]}
    for c, share in tgt.items():
        if c not in short and not short:
            assert abs(d.get(c, 0) / 2000 - share) < 0.01, c
    assert d[("egodex", "generation")] / d[("taco", "translation")] == pytest.approx(4, rel=0.02)
    assert cell_targets({("a", "x"): 3}, 10) == {("a", "x"): 3}
    with pytest.raises(ValueError, match="no samples"):
        balanced_subset(recs, 10, source_weights={"nope": 1})


def test_report_table_and_png(tmp_path):
    rng = np.random.default_rng(0)
    recs = _records(rng, {("a", "generation"): 30, ("b", "translation"): 10, ("b", "prediction"): 5})
    tgt = target_shares(["a", "b"], TASKS)
    table = report_table(recs, tgt)
    assert "30 (66.7% / 16.7%)" in table and table.splitlines()[-2].split()[-1] == "45"
    p = plot_distribution(recs, tmp_path / "dist.png", targets=tgt)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
