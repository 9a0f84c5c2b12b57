"""The main job, end to end: ``beingh0 demo``.

From nothing to a policy driving a (simulated) robot hand, on the embedded default, within a time
budget (``--minutes``, default 10: about 9 minutes in all on a 2-core CPU). Every stage is a library job with its own
command; this module only chains them (:mod:`.stages`: resumable, each failure says what to do):

1. ``tokenizer``  synthetic UniHand motion -> the part-level GRQ-VAE motion tokenizer (``small``),
   reconstruction table in mm (synthetic held-out and, with ``../shared/data``, real hands)
                  -- ``beingh0 tokenizer quickstart``
2. ``pretrain``   synthetic UniHand episodes with frames, tokenized with that tokenizer -> the VLA
   (``--scale``) pretrained on the three instruction tasks; held-out loss vs the unigram baseline
                  -- ``beingh0 pretrain``
3. ``generate``   a held-out scene image + its instruction -> block-formatted motion, rendered over
   the image (PNG strip, mp4)                              -- ``beingh0 generate``
4. ``evaluate``   the text-motion retrieval model, then the paper-style tables (MPJPE, MWTE,
   PA-MPJPE, valid rate, R@3, FID; block / free / soft)   -- ``beingh0 eval``
5. ``posttrain``  synthetic Inspire-hand robot demonstrations (LeRobot v2.1) -> the policy (proprio
   token, action queries, L1 head) from the pretrained VLA; held-out L1 vs repeating the state
                  -- ``beingh0 posttrain``
6. ``posttrain-real``  the same on the real G1 + Inspire episode when ``../shared/data`` has it
   (one episode: a training-set fit, said so)               -- ``beingh0 posttrain --data``
7. ``export``     the policy -> ONNX (dynamo), TensorRT operator coverage, ONNX Runtime parity; a
   TensorRT engine where ``tensorrt`` imports               -- ``beingh0 export``
8. ``control``    the ONNX policy served on loopback (authenticated, msgpack) and the real-time
   control loop against the simulated robot through the client: latency p50/p99, watchdog, timeline
                  -- ``beingh0 serve`` + ``beingh0 serve --simulate --connect``

At the end: ``OUT/report.html`` (one page, figures embedded; the PNGs beside it) and the printed
tables. ``--scale 1b|8b|14b`` runs the same path with the InternVL3 architecture (``--init`` a local
checkpoint for the text tokenizer and weights); the pretraining stage is the one that needs the GPU.
"""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from ..core.errors import UserFileError, UserValueError
from .report import Report
from .stages import Context, Stage, run_stages

__all__ = ["DEMO_STAGES", "run_demo", "SCALES", "demo_stages"]

#: The VLA presets (beingh0.vla.config.PRESETS; spelled out here so that parsing the demo's flags does
#: not import transformers -- a test keeps the two equal).
SCALES = ("tiny", "1b", "8b", "14b")
#: Shares of the time budget of the training stages (the rest goes to synthesis, export, evaluation).
SHARES = {"tokenizer": 0.2, "pretrain": 0.3, "evaluate": 0.05, "posttrain": 0.2, "posttrain-real": 0.05}
REAL_EPISODE = "g1_inspire_lerobot_v21"


def _minutes(ctx: Context, stage: str) -> float:
    return ctx.budget_s(stage) / 60.0


# ----------------------------------------------------------------------------------------- stages
def _tokenizer(ctx: Context) -> dict:
    from ..train.tokenizer import quickstart

    out = ctx.dir("tokenizer")
    rep = quickstart(out, minutes_budget=_minutes(ctx, "tokenizer"), seed=ctx.options["seed"],
                     data_dir=ctx.options["data_dir"], verbose=ctx.progress, episodes=ctx.options["episodes"])
    return {"tokenizer": str(out / "tokenizer"), "rows": rep["rows"], "steps": rep["steps"],
            "figures": [str(p) for p in (out / "losses.png", out / "codebook_usage.png") if p.is_file()]}


def _pretrain(ctx: Context) -> dict:
    from ..vla.data import DataConfig
    from ..vla.pretrain import JobConfig, pretrain_command

    out = ctx.dir("pretrain")
    o = ctx.options
    job = JobConfig(preset=o["scale"])
    rep = pretrain_command(out, tokenizer=ctx.results["tokenizer"]["tokenizer"], init=o["init"],
                           minutes=_minutes(ctx, "pretrain"), job=job, data_config=DataConfig(motion_seconds=2),
                           progress=ctx.progress)
    return {"run": str(out), "model": str(out / "model"), "steps": rep["steps"], "heldout": rep.get("heldout"),
            "train": rep.get("train"), "baseline": rep.get("baseline"),
            "figures": [str(out / "loss.png")] if (out / "loss.png").is_file() else []}


def _heldout_scene(run: Path, out: Path) -> tuple[Path, str]:
    """A frame and the instruction text of the first held-out synthetic episode, as a PNG."""
    import matplotlib.image as mpimg

    from ..data.shards import ShardIndex
    from ..data.video import episode_frames

    idx = ShardIndex(run / "data" / "val")
    ep = idx.read(0)
    frame = episode_frames(ep, [0])[0]
    path = out / "scene.png"
    mpimg.imsave(path, frame)
    text = idx.header(0)["text"] or {}
    # the instruction of the scene's first segment (what the first seconds show), else the episode's
    segs = [g for g in text.get("segments", []) if g.get("t0", 1.0) == 0.0 and g.get("instruction")]
    instr = segs[0]["instruction"] if segs else text.get("instruction")
    return path, instr or "pick up the object in front of you"


def _generate(ctx: Context) -> dict:
    from ..vla.generate import GenerationConfig
    from ..vla.generate_run import generate_files

    out = ctx.dir("generate")
    run = Path(ctx.results["pretrain"]["run"])
    image, instruction = _heldout_scene(run, out)
    rec = generate_files(image, instruction, run, out, tokenizer=ctx.results["tokenizer"]["tokenizer"],
                         config=GenerationConfig(mode="block", seconds=2), progress=ctx.progress)
    figs = [str(p) for p in sorted(out.glob("*.png")) if p.name != "scene.png"]
    return {"instruction": instruction, "image": str(image), "record": rec, "figures": figs,
            "mp4": [str(p) for p in out.glob("*.mp4")]}


def _evaluate(ctx: Context) -> dict:
    from ..vla.evaluate import (
        EvalConfig,
        evaluate,
        format_tables,
        load_checkpoint,
        write_record,
    )
    from ..vla.retrieval import RetrievalTrain, load_retrieval, train_retrieval

    out = ctx.dir("evaluate")
    run = Path(ctx.results["pretrain"]["run"])
    train_dirs, val_dirs = [run / "data" / "train"], [run / "data" / "val"]
    rt = RetrievalTrain(max_seconds=ctx.budget_s("evaluate"), progress=ctx.progress, seed=ctx.options["seed"])
    rrep = train_retrieval(train_dirs, out / "retrieval", val_data=val_dirs, train=rt, verbose=ctx.progress)
    vla, tok, _ = load_checkpoint(run, ctx.results["tokenizer"]["tokenizer"])
    cfg = EvalConfig(samples=ctx.options["eval_samples"], seed=ctx.options["seed"])
    record = evaluate(vla, tok, val_dirs, cfg, retrieval=load_retrieval(out / "retrieval"), train_folders=train_dirs,
                      progress=ctx.progress)
    json_path, png = write_record(record, out)
    table = format_tables(record)
    if ctx.progress:
        print(table)
    return {"record": str(json_path), "table": table, "retrieval": {k: v for k, v in rrep.items() if k != "history"},
            "figures": [str(png)] if Path(png).is_file() else []}


def _posttrain(ctx: Context, real: bool) -> dict:
    from ..policy.train import posttrain_command

    name = "posttrain-real" if real else "posttrain"
    out = ctx.dir(name)
    data = [Path(ctx.options["data_dir"]) / REAL_EPISODE] if real else None
    rep = posttrain_command(out, data, pretrained=ctx.results["pretrain"]["run"], minutes=_minutes(ctx, name),
                            progress=ctx.progress)
    figs = [str(p) for p in sorted((out / "eval").glob("*.png"))]
    if (out / "loss.png").is_file():
        figs.insert(0, str(out / "loss.png"))
    return {"policy": str(out / "policy"), "eval": rep["eval"], "steps": rep["steps"], "figures": figs,
            "split": rep["eval"].get("split")}


def _has_real(ctx: Context) -> bool:
    d = ctx.options.get("data_dir")
    return d is not None and (Path(d) / REAL_EPISODE / "meta" / "info.json").is_file()


def _export(ctx: Context) -> dict:
    from ..deploy.commands import export_command

    out = ctx.dir("export")
    policy = ctx.results["posttrain"]["policy"]
    summary = export_command(policy, "onnx", out / "policy.onnx", quiet=not ctx.progress)
    if importlib.util.find_spec("tensorrt") is not None:
        summary["tensorrt_engine"] = export_command(policy, "tensorrt", out / "policy.engine", quiet=not ctx.progress)
    else:
        summary["tensorrt_engine"] = "skipped: the tensorrt package is not installed here (the engine is built on the robot PC)"
    return summary


def _control(ctx: Context) -> dict:
    import secrets

    from ..deploy.commands import make_runtime, simulate_command, warmup
    from ..deploy.server import PolicyServer

    out = ctx.dir("control")
    rt = make_runtime(ctx.results["export"]["onnx"], "onnxruntime")
    warmup(rt)
    token = secrets.token_hex(16)
    srv = PolicyServer(rt, host="127.0.0.1", port=0, token=token)
    srv.start()
    try:
        stats = simulate_command(None, connect=f"127.0.0.1:{srv.port}", token=token, steps=ctx.options["control_steps"],
                                 png=out / "timeline.png", json_path=out / "control.json")
    finally:
        srv.stop()
    return {"stats": stats, "figures": [str(out / "timeline.png")]}


def demo_stages() -> list[Stage]:
    return [
        Stage("tokenizer", "motion tokenizer on synthetic hand motion", "beingh0 tokenizer quickstart", _tokenizer,
              SHARES["tokenizer"]),
        Stage("pretrain", "VLA pretraining on synthetic UniHand episodes",
              "beingh0 pretrain --out OUT/pretrain --tokenizer OUT/tokenizer/tokenizer", _pretrain, SHARES["pretrain"]),
        Stage("generate", "motion generation for a held-out scene",
              "beingh0 generate IMAGE \"instruction\" --checkpoint OUT/pretrain", _generate),
        Stage("evaluate", "evaluation (retrieval model, paper-style tables)",
              "beingh0 eval train-retrieval ...; beingh0 eval --checkpoint OUT/pretrain --data OUT/pretrain/data/val",
              _evaluate, SHARES["evaluate"]),
        Stage("posttrain", "policy post-training on synthetic Inspire-hand demonstrations",
              "beingh0 posttrain --pretrained OUT/pretrain --out OUT/posttrain", lambda c: _posttrain(c, False),
              SHARES["posttrain"]),
        Stage("posttrain-real", "policy post-training on the real G1 + Inspire episode",
              f"beingh0 posttrain --pretrained OUT/pretrain --data ../shared/data/{REAL_EPISODE} --out OUT/posttrain-real",
              lambda c: _posttrain(c, True), SHARES["posttrain-real"], when=_has_real),
        Stage("export", "ONNX export (+ TensorRT where installed)",
              "beingh0 export OUT/posttrain/policy --format onnx --out OUT/export/policy.onnx", _export),
        Stage("control", "policy server + real-time control loop (simulated robot)",
              "beingh0 serve OUT/export/policy.onnx & beingh0 serve --simulate --connect HOST:PORT", _control),
    ]


DEMO_STAGES = tuple(s.name for s in demo_stages())


# ----------------------------------------------------------------------------------------- report
def _mm_rows(rows) -> list[dict]:
    return [{"set": r["name"], "MPJPE (mm)": r["mpjpe_mm"], "PA-MPJPE (mm)": r["pa_mpjpe_mm"],
             "wrist (mm)": r["wrist_mm"], "code use": f"{100 * r['utilisation']:.0f} %"} for r in rows]


def _figs(section, res: dict | None, caption: str) -> None:
    for f in (res or {}).get("figures", []):
        if Path(f).is_file():
            section.figure(f, f"{caption}: {Path(f).stem}")


def build_report(ctx: Context, seconds: float) -> Path:
    r, o = ctx.results, ctx.options
    rep = Report("beingh0 demo", meta=f"scale {o['scale']}, budget {ctx.minutes:g} min, took {seconds / 60:.1f} min, seed {o['seed']}")
    if r.get("tokenizer"):
        s = rep.section("1. Motion tokenizer (reconstruction, mm)")
        s.table(_mm_rows(r["tokenizer"]["rows"]))
        _figs(s, r["tokenizer"], "tokenizer")
    if r.get("pretrain"):
        p = r["pretrain"]
        s = rep.section("2. VLA pretraining")
        rows = [{"": "unigram baseline", "loss": (p.get("baseline") or {}).get("unigram_entropy"),
                 "motion acc": (p.get("baseline") or {}).get("motion_majority_acc")}]
        for k in ("train", "heldout"):
            if p.get(k):
                rows.append({"": k, "loss": p[k].get("loss"), "motion acc": p[k].get("motion_acc")})
        s.text(f"{p['steps']} optimizer steps.").table(rows)
        _figs(s, p, "pretraining")
    if r.get("generate"):
        g = r["generate"]
        s = rep.section("3. Generated motion (block-formatted) for a held-out scene")
        s.text(f"Instruction: {g['instruction']}")
        _figs(s, g, "generation")
    if r.get("evaluate"):
        e = r["evaluate"]
        s = rep.section("4. Evaluation")
        s.code(e["table"])
        _figs(s, e, "evaluation")
    for name, title in (("posttrain", "5. Policy on synthetic Inspire-hand demonstrations"),
                        ("posttrain-real", "6. Policy on the real G1 + Inspire episode")):
        if r.get(name):
            p = r[name]
            ev = p["eval"]
            s = rep.section(title)
            s.text(f"{p['steps']} steps; open-loop L1 on {p['split']}.")
            s.table([{"": "policy", "mean L1": ev.get("l1_mean")}, {"": "repeat the current state", "mean L1": ev.get("baseline_mean")}])
            _figs(s, p, "policy")
    if r.get("export"):
        x = r["export"]
        s = rep.section("7. Export")
        s.table([{"file": x.get("onnx"), "MiB": (x.get("bytes") or 0) / 2**20, "nodes": x.get("nodes"),
                  "ORT max abs err": x.get("ort_max_abs_err"), "TensorRT coverage": str(x.get("tensorrt_coverage"))}])
        s.text(f"TensorRT engine: {x.get('tensorrt_engine')}")
    if r.get("control"):
        c = r["control"]
        s = rep.section("8. Control loop (simulated robot, through the policy server)")
        st = c["stats"]
        s.table([{k: st.get(k) for k in ("steps", "inferences", "inference_ms_p50", "inference_ms_p99", "late_inferences",
                                            "held_steps", "clipped_steps", "overruns")}])
        _figs(s, c, "control")
    return rep.write(ctx.out)


# ----------------------------------------------------------------------------------------- entry
def run_demo(out="out/demo", *, minutes: float = 10.0, scale: str = "tiny", init=None, seed: int = 0, data_dir=None,
             episodes: int = 48, eval_samples: int = 16, control_steps: int = 200, stages=None,
             progress: bool = True) -> dict:
    """Run the main job (module docstring) into ``out``; returns ``{stage: result}`` (also ``OUT/demo.json``)."""
    if scale not in SCALES:
        raise UserValueError(f"--scale must be one of {SCALES}, got {scale!r}")
    if scale != "tiny" and init is None:
        raise UserValueError(f"--scale {scale} needs --init PATH: a local InternVL3 checkpoint (Hugging Face format) for "
                             "its text tokenizer and weights")
    if init is not None and not Path(init).is_dir():
        raise UserFileError(f"--init {init}: no such checkpoint folder")
    if not (isinstance(minutes, (int, float)) and minutes > 0):
        raise UserValueError(f"--minutes must be > 0, got {minutes!r}")
    out = Path(out)
    opts = {"scale": scale, "init": None if init is None else str(init), "seed": seed,
            "data_dir": None if data_dir is None else str(data_dir), "episodes": episodes, "eval_samples": eval_samples,
            "control_steps": control_steps}
    ctx = Context(out, minutes=float(minutes), options=opts, progress=progress)
    t0 = time.perf_counter()
    results = run_stages(demo_stages(), ctx, only=stages)
    dt = time.perf_counter() - t0
    # the whole job's time: every stage's own seconds (a resumed run reuses the earlier stages')
    marks = [out / "stages" / f"{n}.json" for n in DEMO_STAGES]
    dt = max(dt, sum(json.loads(m.read_text())["seconds"] for m in marks if m.is_file()))
    page = build_report(ctx, dt)
    (out / "demo.json").write_text(json.dumps({"seconds": dt, "options": opts, "results": results}, indent=1, default=str))
    print(summary_text(results, dt, page))
    return results


def summary_text(r: dict, seconds: float, page: Path) -> str:
    lines = [f"demo finished in {seconds / 60:.1f} min; report: {page}"]
    if r.get("tokenizer"):
        for row in r["tokenizer"]["rows"]:
            lines.append(f"  tokenizer  {row['name']:<28} MPJPE {row['mpjpe_mm']:6.1f} mm  PA {row['pa_mpjpe_mm']:5.1f} mm")
    if r.get("pretrain") and r["pretrain"].get("heldout"):
        h, b = r["pretrain"]["heldout"], r["pretrain"].get("baseline") or {}
        lines.append(f"  pretrain   held-out loss {h['loss']:.3f} vs unigram {b.get('unigram_entropy', float('nan')):.3f}")
    for k in ("posttrain", "posttrain-real"):
        if r.get(k):
            ev = r[k]["eval"]
            lines.append(f"  {k:<10} L1 {ev.get('l1_mean', float('nan')):.4f} vs repeat-state {ev.get('baseline_mean', float('nan')):.4f}"
                         f" ({r[k]['split']})")
    if r.get("export"):
        lines.append(f"  export     {r['export'].get('onnx')}: ORT max abs err {r['export'].get('ort_max_abs_err')}")
    if r.get("control"):
        st = r["control"]["stats"]
        lines.append(f"  control    p50 {st['inference_ms_p50']:.1f} ms, p99 {st['inference_ms_p99']:.1f} ms, "
                     f"{st['late_inferences']} late, {st['held_steps']} held")
    return "\n".join(lines)
