"""Open-loop evaluation of a policy on recorded episodes, in the dataset's units.

For every evaluated frame the policy predicts a chunk from the recorded observation; the error is
the L1 between predicted and recorded actions over the chunk's valid steps (``action_is_pad``
excluded), per action dimension. Next to it, the **repeat-the-current-state** baseline: every
action of the chunk = the current ``observation.state`` (defined when state and action have the
same dimensions, by name where both have names). Plots: per joint, the first predicted action of
each frame's chunk against the recorded action, over the episode.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.errors import UserValueError

__all__ = ["baseline_index", "evaluate_open_loop", "format_eval", "plot_trajectories"]


def baseline_index(spec) -> np.ndarray | None:
    """For each action dimension the state dimension that 'repeat the current state' copies, or None."""
    sn, an = spec.state_names, spec.action_names
    if sn and an:
        pos = {n: i for i, n in enumerate(sn)}
        if all(n in pos for n in an):
            return np.asarray([pos[n] for n in an])
        return None
    if spec.state_dim == spec.action_dim:
        return np.arange(spec.action_dim)
    return None


@torch.no_grad()
def evaluate_open_loop(policy, dataset, *, stride: int = 1, max_items: int | None = None, batch_size: int = 16) -> dict:
    """Per-dimension L1 of the policy and of the repeat-state baseline on ``dataset``'s items
    (:class:`.data.PolicyDataset`, every ``stride``-th, at most ``max_items``), and the trajectories."""
    from .data import PolicyCollator

    if stride < 1:
        raise UserValueError(f"stride must be >= 1, got {stride}")
    ids = np.arange(0, len(dataset), stride)
    if max_items is not None:
        ids = ids[:max_items]
    collate = PolicyCollator(dataset.builder)
    A = policy.spec.action_dim
    bidx = baseline_index(policy.spec)
    err, berr, cnt = np.zeros(A), np.zeros(A), 0.0
    traj: dict[int, dict] = {}
    was = policy.training
    policy.eval()
    dev = policy.queries.device
    try:
        for a in range(0, len(ids), batch_size):
            chunk_ids = ids[a: a + batch_size]
            raws = [dataset.item(int(i)) for i in chunk_ids]
            batch = collate([dict(dataset.encode(r), index=int(i)) for r, i in zip(raws, chunk_ids)])
            batch = {k: v.to(dev) for k, v in batch.items()}
            pred = policy.forward_core(batch["pixel_values"], batch["input_ids"], batch["attention_mask"],
                                       batch["observation.state"]).double().cpu().numpy()
            rec = batch["action"].double().cpu().numpy()
            valid = (~batch["action_is_pad"].bool()).cpu().numpy()[..., None].astype(np.float64)
            err += (np.abs(pred - rec) * valid).sum((0, 1))
            cnt += valid.sum()
            if bidx is not None:
                st = batch["observation.state"].double().cpu().numpy()
                st = (st[:, -1] if st.ndim == 3 else st)[:, None, bidx]  # the current state (last of a history)
                berr += (np.abs(st - rec) * valid).sum((0, 1))
            for r, p, c in zip(raws, pred, rec):
                e = traj.setdefault(int(r.get("episode_index", 0)), {"frame": [], "pred": [], "recorded": []})
                e["frame"].append(int(r.get("frame_index", len(e["frame"]))))
                e["pred"].append(p[0].tolist())
                e["recorded"].append(c[0].tolist())
    finally:
        policy.train(was)
    if cnt == 0:
        raise UserValueError("no valid actions to evaluate (empty dataset)")
    l1 = err / cnt
    out = {"items": len(ids), "episodes": sorted(traj), "names": policy.spec.action_names or [f"a{i}" for i in range(A)],
           "l1": l1.tolist(), "l1_mean": float(l1.mean()), "baseline": None, "baseline_mean": None, "trajectories": traj}
    if bidx is not None:
        b = berr / cnt
        out["baseline"], out["baseline_mean"] = b.tolist(), float(b.mean())
    return out


def format_eval(res: dict, title: str) -> str:
    """A per-dimension table (dataset units) of the policy next to the repeat-state baseline."""
    head = (f"{title}: open-loop L1 per action dimension, in the dataset's units ({res['items']} frames, "
            f"episodes {res['episodes'][:6]}{' ...' if len(res['episodes']) > 6 else ''})")
    lines = [head,
             f"{'dimension':28s}{'policy':>12s}{'repeat state':>14s}"]
    b = res["baseline"] or [float("nan")] * len(res["l1"])
    for n, x, y in zip(res["names"], res["l1"], b):
        lines.append(f"{str(n)[:27]:28s}{x:>12.4f}{y:>14.4f}")
    bm = res["baseline_mean"]
    lines.append(f"{'mean':28s}{res['l1_mean']:>12.4f}{(bm if bm is not None else float('nan')):>14.4f}")
    return "\n".join(lines)


def plot_trajectories(res: dict, path, episode: int | None = None, title: str = "") -> None:
    """PNG: per joint, the first action of each predicted chunk vs the recorded action over one episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = res["episodes"][0] if episode is None else episode
    t = res["trajectories"][ep]
    order = np.argsort(t["frame"])
    f = np.asarray(t["frame"])[order]
    p, r = np.asarray(t["pred"])[order], np.asarray(t["recorded"])[order]
    A = p.shape[1]
    cols = min(4, A)
    rows = -(-A // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows), squeeze=False, sharex=True)
    for j in range(rows * cols):
        ax = axes[j // cols][j % cols]
        if j >= A:
            ax.axis("off")
            continue
        ax.plot(f, r[:, j], "k-", lw=1.2, label="recorded")
        ax.plot(f, p[:, j], "C1--", lw=1.2, label="predicted")
        ax.set_title(str(res["names"][j])[:28], fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title} episode {ep}: first action of each chunk (dataset units) vs frame", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
