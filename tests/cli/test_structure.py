"""The command line's contract: one module per group, flags generated from the config dataclasses
(their defaults win), one command per job, paths from the current directory, and errors: a user's
mistake is one line and exit 2, a bug keeps its traceback."""
import subprocess
import sys
from pathlib import Path

import pytest

import beingh0.cli.main as cli
from beingh0.cli.main import GROUPS, build_parser, main
from beingh0.core.errors import UserError, UserFileError, UserValueError


def _verbs(parser, prefix=()):
    """Every (group, verb) path of the full parser."""
    import argparse

    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, p in a.choices.items():
                subs = [b for b in p._actions if isinstance(b, argparse._SubParsersAction)]
                if subs and not all(b.required for b in subs):  # a verb of its own with optional sub-verbs
                    yield prefix + (name,)
                yield from _verbs(p, prefix + (name,)) if subs else [prefix + (name,)]


def test_one_module_per_group():
    cli_dir = Path(cli.__file__).parent
    modules = sorted(p.stem[4:] for p in cli_dir.glob("cmd_*.py"))
    assert modules == sorted(GROUPS)
    for g in GROUPS:
        mod = __import__(f"beingh0.cli.cmd_{g}", fromlist=["register"])
        assert mod.HELP and callable(mod.register)


@pytest.mark.parametrize("path", sorted(_verbs(build_parser())), ids=" ".join)
def test_every_verb_has_help(path, capsys):
    with pytest.raises(SystemExit) as e:
        main([*path, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: beingh0 {' '.join(path)}")
    p = build_parser()
    for a in p._actions:  # every verb is listed with a help line at the top level
        if hasattr(a, "_choices_actions"):
            assert all(c.help for c in a._choices_actions)


def test_every_demo_stage_has_its_own_command():
    from beingh0.app.demo import demo_stages

    verbs = set(_verbs(build_parser()))
    assert ("demo",) in verbs
    for st in demo_stages():
        words = tuple(w for w in st.command.split()[1:3] if w.isidentifier() or "-" in w)
        assert words[:1] in verbs or words[:2] in verbs, (st.name, st.command)


def test_main_builds_only_the_named_group():
    code = ("import sys; from beingh0.cli.main import main; main(['info']); "
            "print('LOADED', sorted(m for m in ('beingh0.tokenizer', 'beingh0.data', 'beingh0.align') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "LOADED []" in r.stdout


# -- flags generated from the config dataclasses ---------------------------------------------


@pytest.fixture
def calls(monkeypatch):
    seen = {}

    def recorder(name):
        def f(*args, **kw):
            seen[name] = (args, kw)
        return f

    import beingh0.app.demo as demo
    import beingh0.mano.fit as fit
    import beingh0.tokenizer.quickstart as qs
    import beingh0.train.tokenizer as job

    monkeypatch.setattr(job, "train_command", recorder("train"))
    monkeypatch.setattr(qs, "eval_command", recorder("eval"))
    monkeypatch.setattr(demo, "run_demo", recorder("demo"))
    monkeypatch.setattr(fit, "fit_file", recorder("fit"))
    return seen


def test_tokenizer_train_defaults_come_from_the_dataclasses(calls):
    assert main(["tokenizer", "train", "--out", "o"]) == 0
    args, kw = calls["train"]
    # no training flag given: nothing passed, so TrainConfig's own defaults apply (not CLI copies)
    assert kw == {"data": None, "config": "small", "resume": False, "episodes": 64}


def test_tokenizer_train_flags_override_preset_and_defaults(calls, tmp_path, monkeypatch):
    from beingh0.tokenizer.config import TokenizerConfig

    monkeypatch.chdir(tmp_path)
    assert main(["tokenizer", "train", "--out", "o", "--config", "tiny", "--batch-size", "16", "--lr", "1e-3",
                 "--no-plots", "--max-seconds", "9", "--data", "d1", "d2"]) == 0
    args, kw = calls["train"]
    assert kw == {"data": [tmp_path / "d1", tmp_path / "d2"], "config": "tiny", "resume": False, "episodes": 64,
                  "batch_size": 16, "lr": 1e-3, "plots": False, "max_seconds": 9.0}
    assert args[0] == tmp_path / "o"
    assert main(["tokenizer", "train", "--out", "o", "--config", "tiny", "--codes", "8", "--no-kmeans-init",
                 "--dilations", "2", "1"]) == 0
    assert calls["train"][1]["config"] == TokenizerConfig.preset("tiny", codes=8, kmeans_init=False, dilations=(2, 1))


def test_tokenizer_train_resume_takes_the_architecture_from_the_checkpoint(calls, capsys):
    assert main(["tokenizer", "train", "--out", "o", "--resume", "--steps", "50"]) == 0
    assert calls["train"][1]["resume"] is True and calls["train"][1]["steps"] == 50
    assert main(["tokenizer", "train", "--out", "o", "--resume", "--width", "8"]) == 2
    assert "drop --width" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["tokenizer", "train", "--out", "o", "--groups", "3"], "code_dim=64 must be divisible by groups=3"),
])
def test_config_values_the_class_rejects_are_one_line(calls, capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("beingh0: error: ") and needle in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, needle", [
    (["tokenizer", "train", "--out", "o", "--batch-size", "0"], "argument --batch-size: '0': must be >= 1"),
    (["mano", "fit", "k.npy", "--out", "o.npz", "--optimizer", "sgd"], "argument --optimizer: 'sgd': must be one of lbfgs, adam"),
])
def test_field_ranges_and_choices_are_checked_while_parsing(calls, capsys, argv, needle):
    """Ranges and choices from the config's field metadata reject a value as argparse reads the flag
    (usage line + one error line, exit 2), before anything runs."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and not calls


def test_mano_fit_config_from_flags(calls, tmp_path, monkeypatch):
    from beingh0.mano.fit import FitConfig

    monkeypatch.chdir(tmp_path)
    assert main(["mano", "fit", "k.npy", "--out", "o.npz", "--stage2-iters", "7", "--lr", "none", "--progress"]) == 0
    args, kw = calls["fit"]
    assert kw["config"] == FitConfig(stage2_iters=7, progress=True) and args[0] == tmp_path / "k.npy"


def test_data_synth_config_from_flags(monkeypatch, tmp_path):
    import beingh0.data.synth as synth
    from beingh0.data.synth import SynthConfig

    seen = {}
    monkeypatch.setattr(synth, "synth_dataset", lambda out, n, cfg, *a, **k: seen.update(cfg=cfg) or
                        {"episodes": n, "frames": 0, "seconds": 0, "frames_per_s": 0, "out": str(out)})
    assert main(["data", "synth", "--out", str(tmp_path), "--size", "64x48", "--no-frames", "--seconds", "1"]) == 0
    assert seen["cfg"] == SynthConfig(size=(64, 48), frames=False, seconds=1.0)


# -- paths ------------------------------------------------------------------------------------


def test_paths_resolve_from_the_current_directory(calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--minutes", "0.1"]) == 0
    args, kw = calls["demo"]
    assert args[0] == tmp_path / "out" / "demo"
    assert kw["data_dir"] == (tmp_path.parent / "shared" / "data").resolve() and kw["minutes"] == 0.1
    assert main(["tokenizer", "eval", "ck", "--real"]) == 0
    args, kw = calls["eval"]
    assert args[0] == tmp_path / "ck" and kw["data_dir"] == (tmp_path.parent / "shared" / "data").resolve()
    assert "data" not in kw
    assert main(["tokenizer", "eval", "ck", "--data", "v"]) == 0
    assert calls["eval"][1]["data"] == [tmp_path / "v"]
    assert main(["demo", "--data-dir", "mine"]) == 0
    assert calls["demo"][1]["data_dir"] == tmp_path / "mine"


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "x"])
def test_demo_budget_must_be_positive(minutes, capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--minutes", minutes])
    assert e.value.code == 2 and "--minutes" in capsys.readouterr().err


# -- errors -----------------------------------------------------------------------------------


def _fail_with(monkeypatch, exc):
    import beingh0.info as info

    def boom():
        raise exc

    monkeypatch.setattr(info, "info_text", boom)


@pytest.mark.parametrize("exc", [
    UserError("a user's mistake; do this"), UserValueError("bad value; pass 3"), UserFileError("no such file x"),
    FileNotFoundError(2, "No such file or directory", "x.npy"), IsADirectoryError(21, "Is a directory", "d"),
    NotADirectoryError(20, "Not a directory", "f"), FileExistsError(17, "File exists", "out"),
    PermissionError(13, "Permission denied", "/root/x"),
], ids=lambda e: type(e).__name__)
def test_user_mistakes_are_one_line_exit_2(monkeypatch, capsys, exc):
    _fail_with(monkeypatch, exc)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("beingh0: error: ") and err.count("\n") == 1 and "Traceback" not in err
    if isinstance(exc, OSError) and exc.filename:
        assert err == f"beingh0: error: {exc.filename}: {exc.strerror}\n"


FORMAT_ERRORS = (
    ("beingh0.data.episode", "EpisodeFormatError"),
    ("beingh0.data.lerobot", "LeRobotFormatError"),
    ("beingh0.data.sources.common", "SourceDataError"),
    ("beingh0.data.build", "BuildInputError"),
    ("beingh0.mano.io", "UnsafePickleError"),
)


@pytest.mark.parametrize("module, name", FORMAT_ERRORS)
def test_format_errors_are_user_errors(monkeypatch, capsys, module, name):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    _fail_with(monkeypatch, cls("line one\n  line two"))
    assert main(["info"]) == 2
    assert capsys.readouterr().err == "beingh0: error: line one line two\n"


@pytest.mark.parametrize("exc", [ValueError("bug"), TypeError("bug"), RuntimeError("bug"), KeyError("bug"),
                                 IndexError("bug"), AttributeError("bug"), OSError("disk bug")], ids=lambda e: type(e).__name__)
def test_bugs_keep_their_traceback(monkeypatch, exc):
    _fail_with(monkeypatch, exc)
    with pytest.raises(type(exc)):
        main(["info"])


def test_usage_errors_exit_2(capsys):
    for argv in (["nope"], ["mano"], ["tokenizer", "nope"], ["bench", "mano", "--batch", "x"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_real_process_error_is_one_line_and_bug_is_traceback(tmp_path):
    """End to end through the installed entry point's code path (python -m beingh0)."""
    r = subprocess.run([sys.executable, "-m", "beingh0", "mano", "convert", str(tmp_path / "missing.pkl"), str(tmp_path / "o.npz")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("beingh0: error: ") and r.stderr.count("\n") == 1, r.stderr
    code = ("import beingh0.info as i; from beingh0.cli.main import main\n"
            "def boom(): raise ValueError('injected bug')\n"
            "i.info_text = boom; main(['info'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ValueError: injected bug" in r.stderr


# -- README -----------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _readme_commands():
    import re

    text = (REPO / "README.md").read_text()
    table = text[text.index("## Command line"):text.index("## Hand model")]
    for cmd in re.findall(r"^\| `(beingh0 [^`]*)`", table, flags=re.M):
        paths = [[]]
        for tok in cmd.split()[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*(\\\|[a-z-]+)*", tok):
                break
            paths = [p + [alt] for p in paths for alt in tok.split("\\|")]  # `a\|b`: both verbs
        for path in paths:
            yield cmd, path


def test_readme_command_table_matches_the_cli(capsys):
    cmds = list(_readme_commands())
    assert len(cmds) >= 14
    documented = {tuple(p) for _, p in cmds}
    assert documented == set(_verbs(build_parser())), "README's command table and the CLI differ"
    for cmd, path in cmds:
        with pytest.raises(SystemExit) as e:
            main([*path, "--help"])
        assert e.value.code == 0, cmd
    capsys.readouterr()


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    import re

    text = (REPO / "README.md").read_text()
    quick = text[text.index("## Quick start"):text.index("## Command line")]
    blocks = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)
    assert [b.strip() for b in blocks] == ['pip install torch==2.13.0 . && beingh0 demo',
                                         'pip install torch==2.13.0 ".[test]" && pytest']
    ci = (REPO / ".ci" / "run").read_text()
    assert '\n            pip install torch==2.13.0 ".[test]" && pytest\n' in ci
    assert "pip install torch==2.13.0 .\n" in ci and "beingh0 demo --minutes" in ci  # the bare stage
    assert ci.index("stage bare") < ci.index("stage test")


def test_closed_pipe_is_not_a_traceback():
    code = "import sys; from beingh0.cli.main import main; sys.exit(main(['info']))"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # like `beingh0 info | head -0`
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 1 and "Traceback" not in err, err
