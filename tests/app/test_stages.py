"""The stage runner: order, resume, invalidation, failures that say what to do."""
import json

import pytest

from beingh0.app.stages import Context, Stage, StageFailed, run_stages
from beingh0.core.errors import UserValueError


def _stages(calls, fail=None):
    def make(name):
        def run(ctx):
            calls.append(name)
            if fail == name:
                raise UserValueError("the data folder is empty")
            if fail == name + "-bug":
                raise ZeroDivisionError("bug")
            prev = [ctx.results[s] for s in ctx.results]
            return {"n": len(prev), "budget": ctx.budget_s(name)}
        return run

    return [Stage("a", "first", "beingh0 a", make("a"), share=0.5), Stage("b", "second", "beingh0 b", make("b")),
            Stage("c", "third", "beingh0 c", make("c"), when=lambda ctx: ctx.options.get("real", False))]


def test_runs_in_order_and_resumes_from_the_marks(tmp_path):
    calls = []
    res = run_stages(_stages(calls), Context(tmp_path, minutes=2, progress=False))
    assert calls == ["a", "b"] and res["c"] is None
    assert res["a"]["budget"] == 60.0 and res["b"]["n"] == 1
    assert json.loads((tmp_path / "stages" / "a.json").read_text())["result"] == res["a"]
    calls.clear()
    again = run_stages(_stages(calls), Context(tmp_path, minutes=2, progress=False))
    assert calls == [] and again["b"] == res["b"]


def test_changed_options_rerun_everything_after_the_first_stale_stage(tmp_path):
    calls = []
    run_stages(_stages(calls), Context(tmp_path, minutes=2, progress=False))
    (tmp_path / "stages" / "b.json").unlink()
    calls.clear()
    run_stages(_stages(calls), Context(tmp_path, minutes=2, progress=False))
    assert calls == ["b"]
    calls.clear()
    run_stages(_stages(calls), Context(tmp_path, minutes=2, options={"real": True}, progress=False))
    assert calls == ["a", "b", "c"]


def test_user_error_names_the_stage_and_the_way_on(tmp_path):
    calls = []
    with pytest.raises(StageFailed, match=r"stage 'b' failed: the data folder is empty .*rerun.*beingh0 b"):
        run_stages(_stages(calls, fail="b"), Context(tmp_path, minutes=1, progress=False))
    assert (tmp_path / "stages" / "a.json").is_file() and not (tmp_path / "stages" / "b.json").exists()
    calls.clear()
    run_stages(_stages(calls), Context(tmp_path, minutes=1, progress=False))
    assert calls == ["b"]  # continues at the stage that failed


def test_a_bug_keeps_its_traceback(tmp_path, capsys):
    with pytest.raises(ZeroDivisionError):
        run_stages(_stages([], fail="a-bug"), Context(tmp_path, minutes=1))
    assert "internal error" in capsys.readouterr().out


def test_unknown_stage_name_is_a_user_error(tmp_path):
    with pytest.raises(UserValueError, match="unknown stage"):
        run_stages(_stages([]), Context(tmp_path, minutes=1, progress=False), only=["zzz"])


def test_a_stage_whose_input_stage_never_ran_says_what_to_run(tmp_path):
    def needs_a(ctx):
        return {"x": ctx.results["a"]["n"]}

    stages = [Stage("a", "first", "beingh0 a", lambda ctx: {"n": 1}), Stage("b", "second", "beingh0 b", needs_a)]
    with pytest.raises(StageFailed, match=r"stage 'b' failed: .*result of stage 'a'.*--stages a"):
        run_stages(stages, Context(tmp_path, minutes=1, progress=False), only=["b"])
    assert run_stages(stages, Context(tmp_path, minutes=1, progress=False))["b"] == {"x": 1}
