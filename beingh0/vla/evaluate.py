"""The paper's evaluation of a pretrained VLA (section 6.2-6.3, Tables 2-4): ``beingh0 eval``.

Three tasks on held-out instruction samples of tokenized dataset folders
(:class:`beingh0.vla.data.PretrainDataset`):

* **visual-grounded generation** (``generation`` samples, with the image): instruction -> motion;
* **contextual generation** (``prediction`` samples): image + motion history -> the next motion;
* **motion translation** (``translation`` samples): image + motion -> text (always free decoding).

Only samples whose generated span is ``min_seconds``..``max_seconds`` long are used (default 1 s,
the paper's horizon in Tables 2-3; Table 4's short-term range is 2-5 s, long-term 6-10 s); a seeded
random choice of at most ``samples`` per task. Every decoding mode asked for (``free``,
``block``, ``soft``) runs on the **same** samples (``beingh0.vla.generate``; the generated blocks are
decoded to camera-frame MANO, each window placed at the ground-truth pose of the first generated
frame, since motion tokens are relative to their window's first frame).

Metrics (``beingh0.vla.metrics``), per task, mode and head/tail split:

* MPJPE, MWTE, PA-MPJPE (mm) over the frames of valid blocks (valid in the ground truth too);
* valid-generation rate (% of expected blocks that parse);
* M2T R@3 (generation tasks: generated motion -> the samples' instructions) and FID (generated vs
  ground-truth motion embeddings), T2M R@3 (translation: generated text -> the samples' motions),
  with a **retrieval model** (``beingh0.vla.retrieval``; without one these are left out). R@3 is
  among pools of ``pool`` (32) samples, all of them when fewer; the same text counts as correct;
  the ``ground truth`` rows give the retrieval model's own score on the true motion / text.

**Head / tail.** A sample's text (its instruction; a translation sample's caption; a prediction
sample without instruction: its episode's instruction for that hand) is *head* when it is among
the most frequent texts of the same task in the **training** folders that together cover half of
the training samples, else *tail* (rare or unseen). Without training folders the frequencies of the
evaluated folders themselves are used (and the record says so).

Output: a printed table (mm), ``eval.json`` (config, checkpoint, per-sample records, tables) and
``eval.png`` (per-task bars per mode, example renders of generated vs true hands).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.config import validate_config
from ..core.errors import UserFileError, UserValueError
from ..data.instructions import MotionRef, dataset_instruction_samples, parse_placeholders
from .metrics import chance_recall_at_k, fid, motion_errors, recall_at_k, valid_rate

__all__ = ["EvalConfig", "EVAL_TASKS", "load_checkpoint", "head_texts", "evaluate", "format_tables", "plot_eval"]

MODES = ("free", "block", "soft")
#: evaluation task -> instruction-sample task
EVAL_TASKS = {"visual": "generation", "contextual": "prediction", "translation": "translation"}
TASK_TITLES = {"visual": "Visual-grounded hand motion generation", "contextual": "Contextual hand motion generation",
               "translation": "Hand motion translation"}


@dataclass(frozen=True)
class EvalConfig:
    """What ``beingh0 eval`` evaluates."""

    modes: tuple[str, ...] = field(default=("block", "free", "soft"), metadata={"choices": MODES})
    """Decoding modes for the generation tasks (each on the same samples)."""
    tasks: tuple[str, ...] = field(default=tuple(EVAL_TASKS), metadata={"choices": tuple(EVAL_TASKS)})
    """Tasks to run."""
    samples: int = field(default=64, metadata={"ge": 1})
    """At most this many held-out samples per task (a seeded random choice)."""
    min_seconds: int = field(default=1, metadata={"ge": 1})
    """Shortest generated span evaluated (the paper's Tables 2-3: 1 s; Table 4: 2-5 s and 6-10 s)."""
    max_seconds: int = field(default=1, metadata={"ge": 1})
    """Longest generated span evaluated."""
    batch_size: int = field(default=16, metadata={"ge": 1})
    """Prompts generated together."""
    images: bool = True
    """Give the scene image when the episode has frames."""
    pool: int = field(default=32, metadata={"ge": 2})
    """Retrieval pool size for R@3 (all samples when fewer)."""
    head_coverage: float = field(default=0.5, metadata={"gt": 0, "lt": 1})
    """Head = the most frequent training texts covering this fraction of the training samples."""
    seed: int = field(default=0, metadata={"ge": 0})
    """Seeds the sample choice and the instruction templates."""
    examples: int = field(default=2, metadata={"ge": 0})
    """Example renders per generation task in the PNG."""
    soft_placement: str = field(default="own", metadata={"choices": ("own", "context")})
    """Soft mode: chain the predicted windows on themselves (``own``, as every mode does) or place
    window w where the fed-back (averaged, re-quantized) blocks left the hand (``context``)."""
    num_threads: int | None = field(default=None, metadata={"ge": 1})
    """torch threads while evaluating (restored afterwards); None = leave torch's setting. On a small
    busy CPU 1 thread is much faster for tiny models (30x measured on a loaded 2-core machine)."""

    def __post_init__(self):
        validate_config(self)
        if not self.modes or not self.tasks:
            raise UserValueError("give at least one mode and one task")
        if self.min_seconds > self.max_seconds:
            raise UserValueError(f"min_seconds {self.min_seconds} is above max_seconds {self.max_seconds}")


# ----------------------------------------------------------------------------------- loading
def load_checkpoint(path, tokenizer=None, device="cpu"):
    """(VLA, motion tokenizer, run folder or None) of a pretraining run folder (``OUT/model`` and
    ``OUT/motion_tokenizer/tokenizer``) or of a model folder (``VLA.save_pretrained``; then
    ``tokenizer`` must name the motion tokenizer)."""
    from ..tokenizer.io import load_tokenizer
    from .model import VLA

    p = Path(path)
    if not p.exists():
        raise UserFileError(f"checkpoint {p} does not exist; pass a pretraining run folder or its model/ folder")
    run = None
    if (p / "model" / "beingh0_vla.json").is_file():
        run, p = p, p / "model"
    elif not (p / "beingh0_vla.json").is_file():
        raise UserFileError(f"{p} is neither a pretraining run (model/beingh0_vla.json) nor a saved VLA "
                            "(beingh0_vla.json); wait for `beingh0 pretrain` to finish or pass its OUT/model")
    if tokenizer is None:
        cands = [q / "motion_tokenizer" / "tokenizer" for q in (run, p.parent) if q is not None]
        tokenizer = next((c for c in cands if (c / "tokenizer.json").is_file()), None)
        if tokenizer is None:
            raise UserFileError(f"no motion tokenizer found beside {p}; pass --tokenizer DIR (the one the VLA was "
                                "pretrained with)")
        run = run or p.parent
    vla = VLA.from_pretrained(p, device=device)
    tok = load_tokenizer(tokenizer, device=device).eval()
    if tok.layout != vla.vocab.layout:
        raise UserValueError(f"the motion tokenizer {tokenizer} has layout {tok.layout}, the VLA {vla.vocab.layout}; "
                             "pass the tokenizer the VLA was pretrained with")
    return vla, tok, run


# ----------------------------------------------------------------------------------- texts, splits
def _episode_text(header: dict, hand: str) -> str:
    t = header or {}
    if hand != "both":
        return t.get("per_hand", {}).get(hand) or t.get("instruction", "")
    return t.get("instruction", "")


def task_text(sample: dict, header_text: dict | None = None) -> str | None:
    """The text a sample is about (module docstring), normalised; None when there is none."""
    from .retrieval import normalize_text, sample_text

    t = sample_text(sample)
    if t is None and header_text is not None:
        t = normalize_text(_episode_text(header_text, sample["hand"])) or None
    return t


def head_texts(folders, coverage: float = 0.5, seed: int = 0) -> dict[str, set]:
    """Per instruction-sample task, the set of head texts of the training folders (module docstring)."""
    from ..data.shards import ShardIndex

    counts: dict[str, Counter] = {t: Counter() for t in EVAL_TASKS.values()}
    for f in folders:
        idx = ShardIndex(f)
        headers = {idx.refs[i].entry["key"]: idx.header(i)["text"] for i in range(len(idx))}
        for s in dataset_instruction_samples(f, seed):
            t = task_text(s, headers.get(s["episode"]))
            if t:
                counts[s["task"]][t] += 1
    out = {}
    for task, c in counts.items():
        total, run, head = sum(c.values()), 0, set()
        for text, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])):
            if run >= coverage * total:
                break
            head.add(text)
            run += n
        out[task] = head
    return out


# ----------------------------------------------------------------------------------- samples
def _response_span(sample: dict) -> tuple[int, int, str] | None:
    refs = [r for r in parse_placeholders(sample["response"]) if isinstance(r, MotionRef)]
    if len(refs) != 1:
        return None
    return refs[0].start, refs[0].stop, refs[0].side


def _motion_span(sample: dict) -> tuple[int, int, str]:
    refs = [r for r in parse_placeholders(sample["prompt"]) if isinstance(r, MotionRef)]
    r = refs[0]
    return r.start, r.stop, r.side


def _choose(ds, task: str, cfg: EvalConfig) -> list[int]:
    ok = []
    for i, it in enumerate(ds.items):
        s = it["sample"]
        if s["task"] != task:
            continue
        span = _response_span(s) if task != "translation" else _motion_span(s)
        if span is not None and cfg.min_seconds <= span[1] - span[0] <= cfg.max_seconds:
            ok.append(i)
    if len(ok) > cfg.samples:
        ok = sorted(np.random.default_rng(cfg.seed).choice(ok, cfg.samples, replace=False).tolist())
    return ok


def _gt_hands(ds, i: int, start_sec: int, stop_sec: int, side: str) -> dict:
    it = ds.items[i]
    ep = ds._episode(it["folder"], it["episode"])
    s = it["sample"]
    a = int(round((s["t0"] + start_sec) * ep.fps))
    b = int(round((s["t0"] + stop_sec) * ep.fps))
    sides = ("left", "right") if side == "both" else (side,)
    out = {}
    for h in sides:
        tr = ep.hands[h]
        out[h] = {"global_orient": tr.global_orient[a:b], "hand_pose": tr.hand_pose[a:b], "trans": tr.trans[a:b],
                  "betas": tr.betas, "valid": tr.valid[a:b]}
    return out


def _errors(pred: dict, gt: dict) -> dict:
    """Errors (mm) of one sample, pooled over its hands' counted frames."""
    sums = {"mpjpe": 0.0, "mwte": 0.0, "pa_mpjpe": 0.0, "frames": 0}
    for h, g in gt.items():
        p = pred.get(h)
        if p is None:
            continue
        T = min(int(np.asarray(g["trans"]).shape[0]), int(torch.as_tensor(p["trans"]).shape[0]))
        mask = np.asarray(g["valid"][:T], bool) & np.asarray(torch.as_tensor(p["valid"][:T]).bool().numpy())
        e = motion_errors({k: torch.as_tensor(np.asarray(p[k]))[:T] for k in ("global_orient", "hand_pose", "trans")},
                          {k: torch.as_tensor(np.asarray(g[k]))[:T] for k in ("global_orient", "hand_pose", "trans")}
                          | {"betas": torch.as_tensor(g["betas"])}, h, mask)
        if e["frames"]:
            for k in ("mpjpe", "mwte", "pa_mpjpe"):
                sums[k] += e[k] * e["frames"]
            sums["frames"] += e["frames"]
    n = sums["frames"]
    return {k: (v / n if n else float("nan")) if k != "frames" else v for k, v in sums.items()}


def _pool(recs: list[dict]) -> dict:
    n = sum(r["frames"] for r in recs)
    out = {"samples": len(recs), "frames": n}
    for k in ("mpjpe", "mwte", "pa_mpjpe"):
        out[k] = sum(r[k] * r["frames"] for r in recs if r["frames"]) / n if n else float("nan")
    return out


# ----------------------------------------------------------------------------------- evaluation
def _generate(vla, tok, prompts, mode: str, seconds: int, batch: int, bar=None):
    from .generate import GenerationConfig, generate

    cfg = GenerationConfig(mode=mode, seconds=seconds)
    outs = []
    for i in range(0, len(prompts), batch):
        res = generate(vla, prompts[i:i + batch], cfg, motion_tokenizer=tok)
        outs += list(res.samples)
        if bar is not None:
            bar.update(len(prompts[i:i + batch]))
    return outs


def _soft_placed(o, prompt, tok) -> dict | None:
    """Soft mode: the predicted windows placed where the context left the hand -- window w at the
    reference frame of the chained **fed-back** (averaged, re-quantized) blocks, the motion the model
    continued from -- instead of chaining the predictions on themselves."""
    from ..core.rotations import axis_angle_to_matrix
    from ..motion import FPS, CanonicalFrame
    from .blocks import decode_hands

    if o.fed_back is None:
        return None
    fb = decode_hands(o.fed_back, o.slots, tok, start=prompt.start)
    frames = {}
    for hand, m in fb.items():
        n = m["trans"].shape[0] // FPS
        go, tr = m["global_orient"][::FPS][:n], m["trans"][::FPS][:n]
        if not bool(torch.isfinite(go).all() and torch.isfinite(tr).all()):
            return None
        frames[hand] = [CanonicalFrame(axis_angle_to_matrix(go[w]), tr[w]) for w in range(n)]
    return decode_hands(o.blocks, o.slots, tok, start=prompt.start, frames=frames)


def _retrieval_block(model, gen_motions, gt_motions, texts, cfg: EvalConfig, split_idx, query: str) -> dict:
    """R@3 (and FID for motion queries) of the samples ``split_idx``."""
    from .retrieval import embed_pairs

    idx = [i for i in split_idx if texts[i] is not None and gen_motions[i] is not None]
    if len(idx) < 2:
        return {}
    pool = cfg.pool if len(idx) > cfg.pool else None
    groups = [texts[i] for i in idx]
    gt_pairs = [{"text": texts[i], **gt_motions[i]} for i in idx]
    m_gt, t_emb = embed_pairs(model, gt_pairs)
    if query == "motion":
        m_gen, _ = embed_pairs(model, [{"text": texts[i], **gen_motions[i]} for i in idx])
        return {"m2t_r3": recall_at_k((m_gen @ t_emb.T).double(), 3, groups, pool),
                "gt_m2t_r3": recall_at_k((m_gt @ t_emb.T).double(), 3, groups, pool),
                "chance_r3": chance_recall_at_k(3, groups, pool), "fid": fid(m_gen, m_gt), "retrieval_n": len(idx)}
    # text queries: generated captions against the true motions
    t_gen = model.encode_text([gen_motions[i]["text"] for i in idx]).cpu()
    return {"t2m_r3": recall_at_k((t_gen @ m_gt.T).double(), 3, groups, pool),
            "gt_t2m_r3": recall_at_k((t_emb @ m_gt.T).double(), 3, groups, pool),
            "chance_r3": chance_recall_at_k(3, groups, pool), "retrieval_n": len(idx)}


def evaluate(vla, tok, folders, cfg: EvalConfig = EvalConfig(), *, retrieval=None, train_folders=None,
             progress: bool = True) -> dict:
    """Run the evaluation (module docstring) and return its record (what ``eval.json`` holds)."""
    threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _evaluate(vla, tok, folders, cfg, retrieval, train_folders, progress)
    finally:
        torch.set_num_threads(threads)


def _evaluate(vla, tok, folders, cfg, retrieval, train_folders, progress) -> dict:
    from ..data.shards import ShardIndex
    from .data import DataConfig, PretrainDataset
    from .generate import prompt_from_dataset
    from .retrieval import motion_input

    t_start = time.perf_counter()
    folders = [Path(f) for f in ([folders] if isinstance(folders, (str, Path)) else folders)]
    for f in folders:
        if not (f / "index.json").is_file():
            raise UserFileError(f"{f} is not a dataset folder (no index.json); pass a tokenized held-out folder")
    if "soft" in cfg.modes and tok is None:
        raise UserValueError("soft-formatted decoding needs the motion tokenizer")
    train_folders = [Path(f) for f in (train_folders or [])]
    head_from = train_folders or folders
    heads = head_texts(head_from, cfg.head_coverage, cfg.seed)
    headers = {}
    for f in folders:
        idx = ShardIndex(f)
        headers.update({idx.refs[i].entry["key"]: idx.header(i)["text"] for i in range(len(idx))})
    ds = PretrainDataset(folders, vla.processor(), DataConfig(tasks=tuple(EVAL_TASKS[t] for t in cfg.tasks),
                                                              motion_seconds=max(4, cfg.max_seconds), images=cfg.images,
                                                              text_only=0.0), fingerprint=tok, seed=cfg.seed)
    record: dict = {"config": asdict(cfg), "data": [str(f) for f in folders],
                    "head_tail_from": [str(f) for f in head_from] if train_folders else "evaluated folders (no training folders given)",
                    "retrieval": retrieval is not None, "tasks": {}, "samples": {}}
    if retrieval is not None:
        retrieval = retrieval.to("cpu").eval()
    bar = None
    chosen = {t: _choose(ds, EVAL_TASKS[t], cfg) for t in cfg.tasks}
    total = sum(len(v) * (len(cfg.modes) if t != "translation" else 1) for t, v in chosen.items())
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="eval", unit="sample", dynamic_ncols=True)
    examples: dict = {}
    for task in cfg.tasks:
        idx = chosen[task]
        if not idx:
            record["tasks"][task] = {"note": f"no held-out {EVAL_TASKS[task]} sample of {cfg.min_seconds}-{cfg.max_seconds} s"}
            continue
        samples = [ds.items[i]["sample"] for i in idx]
        texts = [task_text(s, headers.get(s["episode"])) for s in samples]
        split = ["head" if t in heads[EVAL_TASKS[task]] else "tail" for t in texts]
        prompts = [prompt_from_dataset(ds, i, image=None) for i in idx]
        spans = [(_response_span(s) if task != "translation" else _motion_span(s)) for s in samples]
        gts = [_gt_hands(ds, i, a, b, side) for i, (a, b, side) in zip(idx, spans)]
        gt_m = [dict(zip(("x", "mask"), motion_input(g, retrieval.cfg))) if retrieval is not None else None for g in gts]
        record["samples"][task] = [{"episode": s["episode"], "hand": s["hand"], "t0": s["t0"], "text": t, "split": sp}
                                   for s, t, sp in zip(samples, texts, split)]
        modes = ("free",) if task == "translation" else cfg.modes
        res_task: dict = {}
        for mode in modes:
            outs = _generate(vla, tok, prompts, mode, cfg.min_seconds, cfg.batch_size, bar)
            if mode == "soft" and cfg.soft_placement == "context":
                for o, pr in zip(outs, prompts):
                    placed = _soft_placed(o, pr, tok)
                    if placed is not None:
                        o.mano = placed
            per, gen_m = [], []
            for o, g in zip(outs, gts):
                rec = {"valid": o.valid.tolist(), "text": o.text}
                if task != "translation" and o.mano is not None:
                    rec.update(_errors(o.mano, g))
                per.append(rec)
                if retrieval is None:
                    gen_m.append(None)
                elif task == "translation":
                    gen_m.append({"text": o.text or " "})
                elif o.mano is not None and bool(o.valid.all()):
                    x, m = motion_input({h: {k: v for k, v in p.items()} for h, p in o.mano.items()}, retrieval.cfg)
                    gen_m.append({"x": x, "mask": m})
                else:
                    gen_m.append(None)
            rows = {}
            for name in ("head", "tail", "all"):
                sel = [k for k in range(len(idx)) if name == "all" or split[k] == name]
                row: dict = {"samples": len(sel), "valid_rate": valid_rate([v for k in sel for v in per[k]["valid"]])}
                if task != "translation":
                    row.update(_pool([per[k] for k in sel if "frames" in per[k]]))
                if retrieval is not None and sel:
                    row.update(_retrieval_block(retrieval, gen_m, gt_m, texts, cfg, sel,
                                                "text" if task == "translation" else "motion"))
                rows[name] = row
            res_task[mode] = rows
            for k, r in enumerate(per):
                record["samples"][task][k][mode] = r
            if task != "translation" and cfg.examples and mode == modes[0]:
                examples.setdefault(task, [])
                for k in range(min(cfg.examples, len(idx))):
                    o = outs[k]
                    if o.mano is not None:
                        examples[task].append({"mode": mode, "k": k, "text": texts[k], "pred": o.mano, "gt": gts[k]})
        record["tasks"][task] = res_task
    if bar is not None:
        bar.close()
    record["seconds"] = time.perf_counter() - t_start
    record["_examples"] = examples
    return record


# ----------------------------------------------------------------------------------- output
def _f(x, w=7, p=2):
    return f"{x:>{w}.{p}f}" if isinstance(x, (int, float)) and x == x else f"{'-':>{w}}"


def format_tables(record: dict) -> str:
    """The record as the paper's Tables 2-3 (errors in mm, rates and R@3 in %)."""
    lines = []
    tr = record["tasks"].get("translation")
    if tr and "free" in tr:
        lines.append("Table 2 -- valid rate (free decoding, visual-grounded generation) and motion translation T2M R@3 (%)")
        lines.append(f"{'':<22} {'valid':>7} {'T2M R@3 head':>13} {'tail':>7} {'chance':>7}")
        vis = record["tasks"].get("visual", {}).get("free", {}).get("all", {})
        h, t = tr["free"]["head"], tr["free"]["tail"]
        lines.append(f"{'ground truth':<22} {'-':>7} {_f(h.get('gt_t2m_r3'), 13, 1)} {_f(t.get('gt_t2m_r3'), 7, 1)} "
                     f"{_f(tr['free']['all'].get('chance_r3'), 7, 1)}")
        lines.append(f"{'model':<22} {_f(vis.get('valid_rate'), 7, 1)} {_f(h.get('t2m_r3'), 13, 1)} "
                     f"{_f(t.get('t2m_r3'), 7, 1)}")
        lines.append("")
    head = (f"{'task / mode':<28} {'n h/t':>7} {'valid %':>7} {'MPJPE h':>8} {'t':>7} {'MWTE h':>7} {'t':>7} "
            f"{'PA-MPJPE h':>10} {'t':>6} {'M2T R@3 h':>9} {'t':>6} {'FID h':>7} {'t':>7}")
    c = record["config"]
    span = f"{c['min_seconds']} s" if c["min_seconds"] == c["max_seconds"] else f"{c['min_seconds']}-{c['max_seconds']} s"
    lines.append(f"Table {3 if c['max_seconds'] == 1 else 4} -- hand motion generation, generated spans of {span} "
                 "(MPJPE, MWTE, PA-MPJPE in mm; valid rate and M2T R@3 in %)")
    lines.append(head)
    lines.append("-" * len(head))
    for task in ("visual", "contextual"):
        res = record["tasks"].get(task)
        if not res or "note" in res:
            if res:
                lines.append(f"{TASK_TITLES[task]}: {res['note']}")
            continue
        lines.append(f"# {TASK_TITLES[task]}")
        first = next(iter(res.values()))
        if "gt_m2t_r3" in first["all"]:
            lines.append(f"{'  ground truth':<28} {'':>7} {'':>7} {'':>8} {'':>7} {'':>7} {'':>7} {'':>10} {'':>6} "
                         f"{_f(first['head'].get('gt_m2t_r3'), 9, 1)} {_f(first['tail'].get('gt_m2t_r3'), 6, 1)}")
        for mode, rows in res.items():
            h, t, a = rows["head"], rows["tail"], rows["all"]
            lines.append(f"{'  ' + mode:<28} {h['samples']:>3}/{t['samples']:<3} {_f(a['valid_rate'], 7, 1)} "
                         f"{_f(h.get('mpjpe'), 8)} {_f(t.get('mpjpe'))} {_f(h.get('mwte'))} {_f(t.get('mwte'))} "
                         f"{_f(h.get('pa_mpjpe'), 10)} {_f(t.get('pa_mpjpe'), 6)} {_f(h.get('m2t_r3'), 9, 1)} "
                         f"{_f(t.get('m2t_r3'), 6, 1)} {_f(h.get('fid'), 7, 3)} {_f(t.get('fid'), 7, 3)}")
    if not record.get("retrieval"):
        lines.append("(no retrieval model given: R@3 and FID left out; train one with `beingh0 eval train-retrieval`)")
    else:
        chance = [r["all"].get("chance_r3") for t in ("visual", "contextual") for r in record["tasks"].get(t, {}).values()
                  if isinstance(r, dict) and "all" in r]
        if chance and chance[0] is not None:
            lines.append(f"(R@3 chance level: {chance[0]:.1f} %; pools of {record['config']['pool']} samples or all)")
    return "\n".join(lines)


def plot_eval(record: dict, path) -> Path:
    """``eval.png``: per generation task, MPJPE / MWTE / PA-MPJPE bars per mode (head and tail), and
    example renders (generated vs true keypoints at the middle frame)."""
    from ..mano.render import draw_skeleton, pyplot_agg
    from .metrics import hand_keypoints

    plt = pyplot_agg()
    tasks = [t for t in ("visual", "contextual") if t in record["tasks"] and "note" not in record["tasks"][t]]
    ex = record.get("_examples", {})
    n_ex = max([len(ex.get(t, [])) for t in tasks] + [0])
    cols = 1 + n_ex
    fig = plt.figure(figsize=(4.2 * cols, 3.6 * max(1, len(tasks))))
    for r, task in enumerate(tasks):
        ax = fig.add_subplot(max(1, len(tasks)), cols, r * cols + 1)
        res = record["tasks"][task]
        modes = list(res)
        metrics = ("mpjpe", "mwte", "pa_mpjpe")
        w = 0.8 / (2 * len(modes))
        for m_i, mode in enumerate(modes):
            for s_i, sp in enumerate(("head", "tail")):
                vals = [res[mode][sp].get(k, np.nan) for k in metrics]
                ax.bar(np.arange(3) + (2 * m_i + s_i) * w - 0.4 + w / 2, vals, w, label=f"{mode} {sp}",
                       alpha=1.0 if sp == "head" else 0.55, color=f"C{m_i}")
        ax.set_xticks(range(3), ["MPJPE", "MWTE", "PA-MPJPE"])
        ax.set_ylabel("mm")
        ax.set_title(TASK_TITLES[task], fontsize=9)
        ax.legend(fontsize=6)
        for j, e in enumerate(ex.get(task, [])[:n_ex]):
            ax3 = fig.add_subplot(max(1, len(tasks)), cols, r * cols + 2 + j, projection="3d")
            pts = []
            for h, g in e["gt"].items():
                T = int(np.asarray(g["trans"]).shape[0])
                t = T // 2
                kg = hand_keypoints({k: np.asarray(g[k])[t:t + 1] for k in ("global_orient", "hand_pose", "trans")}
                                    | {"betas": np.asarray(g["betas"])[None]}, h)[0].numpy()
                draw_skeleton(ax3, kg, alpha=0.5, style="--")
                pts.append(kg)
                p = e["pred"].get(h)
                if (p is not None and t < int(torch.as_tensor(p["trans"]).shape[0]) and bool(torch.as_tensor(p["valid"])[t])
                        and bool(torch.isfinite(torch.as_tensor(p["trans"])[t]).all())):
                    kp = hand_keypoints({k: torch.as_tensor(p[k])[t:t + 1] for k in ("global_orient", "hand_pose", "trans")}
                                        | {"betas": torch.as_tensor(np.asarray(g["betas"]))[None]}, h)[0].numpy()
                    draw_skeleton(ax3, kp)
                    pts.append(kp)
            if pts:
                P = np.concatenate(pts)
                c, rad = P.mean(0), max(float(np.ptp(P, 0).max()) / 2, 0.05)
                ax3.set_xlim(c[0] - rad, c[0] + rad), ax3.set_ylim(c[1] - rad, c[1] + rad), ax3.set_zlim(c[2] - rad, c[2] + rad)
            ax3.set_title(f"{e['mode']}: {(e['text'] or '')[:40]}\n(solid: generated, dashed: true)", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_record(record: dict, out_dir) -> tuple[Path, Path]:
    """``eval.json`` (without the example arrays) and ``eval.png`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_eval(record, out / "eval.png")
    rec = {k: v for k, v in record.items() if not k.startswith("_")}
    tmp = out / "eval.json.tmp"
    tmp.write_text(json.dumps(rec, indent=1, default=float))
    tmp.replace(out / "eval.json")
    return out / "eval.json", png
