"""Stages of a long job: run in order, each resumable, each with its own command, failures that say what to do.

A :class:`Stage` is a named step with the stand-alone command that does the same thing, a share of
the time budget, and a function ``run(ctx) -> dict`` (its result: numbers and paths, JSON-able).
:func:`run_stages` runs them in order under ``OUT/``:

* a stage that finished writes ``OUT/stages/<name>.json`` (atomically: the result, the options it
  ran with, its seconds); the next run with the same options skips it and reuses the result, so an
  interrupted job continues at the stage it stopped in (the stages' own trainings resume from
  their checkpoints inside a stage);
* a stage that raises a :class:`~beingh0.core.errors.UserError` stops the job with one line naming
  the stage, the reason, and the two ways on (rerun the job to continue, or run the stage's own
  command); a bug keeps its traceback, with the same line printed first;
* options that change what a finished stage produced (``ctx.options``) invalidate it and every
  stage after it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.errors import UserError

__all__ = ["Context", "Results", "Stage", "StageFailed", "run_stages"]

STAGE_FORMAT = "beingh0.stage"


class StageFailed(UserError):
    """A stage stopped on a user-level error (the message names the stage and what to do)."""


class Results(dict):
    """The earlier stages' results by stage name; asking for one that has not run (``--stages`` that
    skips a stage a later one needs) is a user's mistake with one line that says what to run first."""

    def __missing__(self, name):
        raise StageFailed(f"this stage needs the result of stage {name!r}, which has not run in this folder; run "
                          f"it first (the same command without --stages, or with --stages {name} ...)")


@dataclass
class Context:
    """What every stage sees: the job's folder, options, time budget and the earlier stages' results."""

    out: Path
    minutes: float
    options: dict = field(default_factory=dict)
    results: dict = field(default_factory=Results)
    progress: bool = True
    started: float = field(default_factory=time.perf_counter)
    shares: dict = field(default_factory=dict)

    def budget_s(self, stage: str) -> float:
        """Seconds this stage may spend: its share of the total budget (at least 5 s)."""
        return max(5.0, 60.0 * self.minutes * self.shares.get(stage, 0.0))

    def dir(self, stage: str) -> Path:
        p = self.out / stage
        p.mkdir(parents=True, exist_ok=True)
        return p


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    command: str
    """The stand-alone command that does what this stage does (printed when it fails)."""
    run: Callable[[Context], dict]
    share: float = 0.0
    """Fraction of the job's time budget (training stages); the others take what they need."""
    when: Callable[[Context], bool] | None = None
    """Run only where this returns True (e.g. the real-data stage when the data is present)."""


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _say(ctx: Context, text: str) -> None:
    if ctx.progress:
        print(text, flush=True)


def run_stages(stages: Sequence[Stage], ctx: Context, *, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run ``stages`` in order (see the module docstring); returns ``{name: result}``."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique: {names}")
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        from ..core.errors import UserValueError

        raise UserValueError(f"unknown stage(s) {unknown}; the stages are {names}")
    ctx.shares = {s.name: s.share for s in stages}
    if not isinstance(ctx.results, Results):
        ctx.results = Results(ctx.results)
    marks = ctx.out / "stages"
    marks.mkdir(parents=True, exist_ok=True)
    opts = json.loads(json.dumps(ctx.options, default=str))
    stale = False
    for i, st in enumerate(stages, 1):
        head = f"[{i}/{len(stages)}] {st.title}"
        mark = marks / f"{st.name}.json"
        if st.when is not None and not st.when(ctx):
            _say(ctx, f"{head}: skipped (not applicable here)")
            ctx.results[st.name] = None
            continue
        if only is not None and st.name not in only:
            if mark.is_file():
                ctx.results[st.name] = json.loads(mark.read_text())["result"]
            continue
        if mark.is_file() and not stale:
            saved = json.loads(mark.read_text())
            if saved.get("format") == STAGE_FORMAT and saved.get("options") == opts:
                ctx.results[st.name] = saved["result"]
                _say(ctx, f"{head}: done earlier ({saved['seconds']:.0f} s), reusing {mark}")
                continue
        stale = True  # this stage runs: every later one must run again too
        _say(ctx, f"{head}  (on its own: {st.command})")
        t0 = time.perf_counter()
        try:
            res = st.run(ctx) or {}
        except UserError as e:
            raise StageFailed(f"stage {st.name!r} failed: {e} -- fix that, then rerun the same command to continue from "
                              f"this stage, or run the stage alone: {st.command}") from None
        except BaseException:
            _say(ctx, f"stage {st.name!r} failed with an internal error (traceback below); rerun the same command to "
                      f"continue from this stage, or run it alone: {st.command}")
            raise
        dt = time.perf_counter() - t0
        ctx.results[st.name] = res
        _write_json(mark, {"format": STAGE_FORMAT, "stage": st.name, "options": opts, "seconds": dt, "result": res})
        _say(ctx, f"{head}: done in {dt:.0f} s")
    return ctx.results
