"""The paper's data-efficiency study (section 6.6, Figure 12) as one command: post-train with 25 / 50 /
100 % of the training demonstrations, from the pretrained VLA and from the un-pretrained backbone,
with the same budget (steps, batch, schedule) and the same held-out episodes; a table and a plot of
the held-out open-loop L1 (next to the repeat-the-current-state baseline).

The paper measures task success on a real robot; here the metric is the open-loop L1 on held-out
demonstrations (no robot in the loop), in the dataset's units.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..core.errors import UserValueError
from ..train import TrainConfig
from .config import PolicyConfig
from .train import POSTTRAIN_TRAIN, PostTrainJob, posttrain_command

__all__ = ["format_study", "study_command"]

INITS = ("pretrained", "scratch")


def format_study(rows: list[dict]) -> str:
    lines = [f"{'init':12s}{'data':>7s}{'episodes':>10s}{'held-out L1':>14s}{'repeat state':>14s}",]
    for r in rows:
        b = r["baseline_l1"]
        lines.append(f"{r['init']:12s}{100 * r['fraction']:>6.0f}%{r['train_episodes']:>10d}{r['heldout_l1']:>14.4f}"
                     f"{(b if b is not None else float('nan')):>14.4f}")
    lines.append("(mean open-loop L1 over action dimensions and chunk steps on the held-out episodes, dataset units)")
    return "\n".join(lines)


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for init, style in zip(INITS, ("C0o-", "C3s--")):
        rs = sorted((r for r in rows if r["init"] == init), key=lambda r: r["fraction"])
        if rs:
            ax.plot([100 * r["fraction"] for r in rs], [r["heldout_l1"] for r in rs], style, label=init)
    b = [r["baseline_l1"] for r in rows if r["baseline_l1"] is not None]
    if b:
        ax.axhline(b[0], color="gray", ls=":", label="repeat state")
    ax.set_xlabel("demonstrations used (%)")
    ax.set_ylabel("held-out open-loop L1")
    ax.set_xticks([100 * f for f in sorted({r["fraction"] for r in rows})])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def study_command(out_dir, data=None, *, pretrained=None, fractions=(0.25, 0.5, 1.0), job: PostTrainJob | None = None,
                  policy_config: PolicyConfig | None = None, train: TrainConfig | None = None, progress: bool = True) -> list[dict]:
    """Run the study into ``out_dir`` (one post-training run per (init, fraction), resumable); writes
    ``study.json``, ``study.md`` and ``study.png``. Returns the rows."""
    job, policy_config = job or PostTrainJob(), policy_config or PolicyConfig()
    if pretrained is None:
        raise UserValueError("policy study needs --pretrained DIR (the pretrained VLA to compare with the un-pretrained backbone)")
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise UserValueError(f"--fractions must be in (0, 1], got {list(fractions)}")
    if job.val_fraction <= 0:
        raise UserValueError("the study needs held-out episodes: --val-fraction must be > 0")
    out = Path(out_dir)
    train = train or replace(POSTTRAIN_TRAIN, progress=progress)
    if data is None:  # one synthetic set for all runs
        from .train import synthetic_data

        data = [synthetic_data(out, job, progress)]
    rows = []
    for init in INITS:
        for f in fractions:
            run = out / f"{init}-{round(100 * f)}pct"
            rep = posttrain_command(run, data, pretrained=pretrained, job=replace(job, data_fraction=f, init_from=init),
                                    policy_config=policy_config, train=train, progress=progress, report=False)
            ev = rep["eval"]
            rows.append({"init": init, "fraction": f, "train_episodes": rep["train_episodes"], "steps": rep["steps"],
                         "heldout_l1": ev["l1_mean"], "baseline_l1": ev["baseline_mean"], "heldout_split": ev["split"],
                         "run": str(run)})
            if progress:
                print(f"{init} {100 * f:.0f}%: held-out L1 {ev['l1_mean']:.4f}")
    (out / "study.json").write_text(json.dumps({"rows": rows, "train": train.to_dict(), "job": job.__dict__}, indent=1,
                                               default=str))
    (out / "study.md").write_text(format_study(rows) + "\n")
    _plot(rows, out / "study.png")
    print(format_study(rows))
    print(f"table {out / 'study.md'}, plot {out / 'study.png'}")
    return rows
