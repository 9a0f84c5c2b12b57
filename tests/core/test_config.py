"""beingh0.core.config: flags generated from config dataclasses, and the one validation helper."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from beingh0.core.config import add_config_args, config_from_args, field_docs, given, validate_config
from beingh0.core.errors import UserError, UserValueError


@dataclass(frozen=True)
class Toy:
    """A toy config."""

    steps: int = field(default=10, metadata={"ge": 1})
    """Optimizer steps."""
    lr: float = field(default=2e-4, metadata={"gt": 0, "help": "learning rate (metadata wins)"})
    """Not this text."""
    mode: Literal["fast", "exact"] = "fast"
    """How to run."""
    kind: str = field(default="a", metadata={"choices": ("a", "b")})
    progress: bool = True
    """Show a bar."""
    plots: bool = False
    size: tuple[int, int] = (256, 128)
    """Width and height."""
    dilations: tuple = (9, 3, 1)
    widths: list[float] = field(default_factory=lambda: [0.5])
    limit: float | None = None
    """Stop after this long."""
    threads: int | None = 1
    out: Path = Path("out")
    version: int = field(default=1, metadata={"cli": False})

    def __post_init__(self):
        validate_config(self)


def _parse(argv, cls=Toy, **kw):
    p = argparse.ArgumentParser(prog="t", exit_on_error=False)
    add_config_args(p, cls, **kw)
    return p, p.parse_args(argv)


def test_no_flags_gives_the_dataclass_defaults():
    _, a = _parse([])
    assert given(a, Toy) == {}
    assert config_from_args(Toy, a) == Toy()


def test_every_kind_of_flag_parses():
    _, a = _parse(["--steps", "5", "--lr", "1e-3", "--mode", "exact", "--kind", "b", "--no-progress", "--plots",
                   "--size", "64", "48", "--dilations", "2", "1", "--widths", "1", "2.5", "--limit", "none",
                   "--threads", "none", "--out", "x/y"])
    c = config_from_args(Toy, a)
    assert c == Toy(steps=5, lr=1e-3, mode="exact", kind="b", progress=False, plots=True, size=(64, 48),
                    dilations=(2, 1), widths=[1.0, 2.5], limit=None, threads=None, out=Path("x/y"))
    assert isinstance(c.size, tuple) and isinstance(c.widths, list) and type(c.dilations[0]) is int
    _, a = _parse(["--limit", "3.5"])
    assert config_from_args(Toy, a).limit == 3.5


def test_only_given_flags_override_a_base():
    base = Toy(steps=99, plots=True)
    _, a = _parse(["--lr", "0.5"])
    assert config_from_args(Toy, a, base=base) == Toy(steps=99, plots=True, lr=0.5)
    assert config_from_args(Toy, a, base=base, steps=3).steps == 3  # the command's own overrides come last


def test_help_text_defaults_and_hidden_fields():
    p, _ = _parse([])
    text = " ".join(p.format_help().split())
    assert "Optimizer steps. [>= 1] (default: 10)" in text
    assert "learning rate (metadata wins)" in text and "Not this text" not in text
    assert "--progress, --no-progress" in text and "Show a bar. (default: --progress)" in text
    assert "(default: --no-plots)" in text
    assert "--size N N" in text and "(default: 256 128)" in text
    assert "{fast,exact}" in text and "('none' for none)" in text
    assert "--version" not in text and "A toy config." in text
    p, _ = _parse([], defaults=Toy(steps=7))  # a preset's values as the shown defaults
    assert "(default: 7)" in " ".join(p.format_help().split())


def test_prefix_exclude_and_two_configs_in_one_parser():
    @dataclass
    class Other:
        steps: int = 3

    p = argparse.ArgumentParser(exit_on_error=False)
    add_config_args(p, Toy, exclude=("size", "widths"))
    add_config_args(p, Other, prefix="other-")
    a = p.parse_args(["--steps", "4", "--other-steps", "8"])
    assert config_from_args(Toy, a).steps == 4 and config_from_args(Other, a).steps == 8
    with pytest.raises(SystemExit):
        p.parse_args(["--size", "1", "2"])


@pytest.mark.parametrize("argv, needle", [
    (["--steps", "0"], "must be >= 1"),
    (["--steps", "2.5"], "not an integer"),
    (["--lr", "nan"], "finite"),
    (["--lr", "-1"], "must be > 0"),
    (["--mode", "slow"], "must be one of fast, exact"),
    (["--kind", "c"], "must be one of a, b"),
    (["--size", "1"], "expected 2 arguments"),
    (["--threads", "x"], "not an integer"),
])
def test_bad_flag_values_are_usage_errors(argv, needle, capsys):
    p = argparse.ArgumentParser(prog="t")
    add_config_args(p, Toy)
    with pytest.raises(SystemExit) as e:
        p.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_validate_config_names_field_and_allowed_values():
    with pytest.raises(UserValueError) as e:
        Toy(steps=0)
    msg = str(e.value)
    assert msg == "invalid Toy: steps=0 must be >= 1" and "\n" not in msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, UserError)
    cases = {"mode": ("slow", "one of fast, exact"), "steps": (True, "an integer"), "lr": (float("inf"), "finite"),
             "size": ((1, 2, 3), "exactly 2"), "dilations": ((1, "a"), "every value must be an integer"),
             "progress": (1, "true or false"), "threads": (0.5, "an integer"), "limit": ("1", "a number"),
             "widths": ([], "at least one")}
    for name, (v, needle) in cases.items():
        with pytest.raises(UserValueError, match=needle):
            Toy(**{name: v})
    with pytest.raises(UserValueError, match="steps=0 .*; lr=-1"):  # all problems, one line
        Toy(steps=0, lr=-1)
    assert Toy(threads=None, limit=None, lr=3, dilations=[1, 2]).lr == 3  # int for float, list for tuple


def test_config_from_args_turns_class_checks_into_one_line_user_errors():
    @dataclass
    class Checked:
        a: int = 1
        b: int = 2

        def __post_init__(self):
            if self.a > self.b:
                raise ValueError(f"invalid Checked:\n  - a={self.a} must be <= b={self.b}\n  - (a - b) > 0")

    p = argparse.ArgumentParser()
    add_config_args(p, Checked)
    with pytest.raises(UserValueError) as e:
        config_from_args(Checked, p.parse_args(["--a", "5"]))
    assert str(e.value) == "invalid Checked: a=5 must be <= b=2; (a - b) > 0"


def test_field_docs_reads_attribute_docstrings():
    d = field_docs(Toy)
    assert d["steps"] == "Optimizer steps." and d["lr"] == "learning rate (metadata wins)" and "kind" not in d


def test_unsupported_annotations_and_metadata_are_bugs():
    @dataclass
    class BadType:
        x: dict = None

    @dataclass
    class BadMeta:
        x: int = field(default=1, metadata={"min": 0})

    for cls, needle in ((BadType, "not supported"), (BadMeta, "unknown metadata")):
        with pytest.raises(TypeError, match=needle):
            add_config_args(argparse.ArgumentParser(), cls)


def test_real_configs_generate_flags():
    """The library's config classes go through the generator (annotations all supported)."""
    from beingh0.align.balance import BalanceConfig
    from beingh0.data.instructions import InstructionOptions
    from beingh0.data.samples import MotionOptions
    from beingh0.mano.fit import FitConfig
    from beingh0.tokenizer.config import PRESETS, TokenizerConfig
    from beingh0.tokenizer.train import TrainConfig
    from beingh0.train import TrainConfig as LoopConfig

    classes = [FitConfig, TokenizerConfig, TrainConfig, LoopConfig, BalanceConfig, InstructionOptions, MotionOptions]
    try:
        from beingh0.data.synth import SynthConfig
        classes.append(SynthConfig)
    except ImportError:  # TODO(merge): data.synth imports scipy until the synthetic-motion part lands
        pass
    for cls in classes:
        p = argparse.ArgumentParser()
        add_config_args(p, cls)
        assert config_from_args(cls, p.parse_args([])) == cls()
        assert validate_config(cls()) == cls()  # the helper accepts every default as it is annotated
    for preset in PRESETS.values():
        validate_config(preset)


def _config_class(path):
    import importlib

    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path, kw, needle", [
    ("beingh0.tokenizer.config.TokenizerConfig", {"features": "D7"}, "features='D7' must be one of D51, D99, D109, D114, D162"),
    ("beingh0.tokenizer.config.TokenizerConfig", {"width": 0}, "width=0 must be >= 1"),
    ("beingh0.tokenizer.config.TokenizerConfig", {"ema_decay": 1.0}, "ema_decay=1.0 must be < 1"),
    ("beingh0.tokenizer.config.TokenizerConfig", {"dilations": (3, 0)}, "dilations=(3, 0) every value must be >= 1"),
    ("beingh0.tokenizer.train.TrainConfig", {"batch_size": 0}, "batch_size=0 must be >= 1"),
    ("beingh0.tokenizer.train.TrainConfig", {"device": "tpu"}, "device='tpu' must be one of auto, cpu, cuda"),
    ("beingh0.tokenizer.train.TrainConfig", {"max_seconds": 0}, "max_seconds=0 must be > 0"),
    ("beingh0.train.TrainConfig", {"parallel": "zero"}, "parallel='zero' must be one of auto, none, ddp, fsdp"),
    ("beingh0.train.TrainConfig", {"min_lr_ratio": 2.0}, "min_lr_ratio=2.0 must be <= 1"),
    ("beingh0.mano.fit.FitConfig", {"optimizer": "sgd"}, "optimizer='sgd' must be one of lbfgs, adam"),
    ("beingh0.mano.fit.FitConfig", {"w_keypoints": 0.0}, "w_keypoints=0.0 must be > 0"),
    ("beingh0.mano.fit.FitConfig", {"chirality": "flip"}, "chirality='flip' must be one of invalidate, repair, off"),
    ("beingh0.data.synth.SynthConfig", {"fps": 24}, "fps=24 must be one of 15, 30"),
    ("beingh0.data.synth.SynthConfig", {"size": (8, 8)}, "size=(8, 8) every value must be >= 16"),
    ("beingh0.data.synth.SynthConfig", {"scenario": "juggle"}, "scenario='juggle' must be one of "),
    ("beingh0.data.samples.MotionOptions", {"min_valid": 0.0}, "min_valid=0.0 must be > 0"),
    ("beingh0.data.instructions.InstructionOptions", {"prediction_instruction_rate": 2.0},
     "prediction_instruction_rate=2.0 must be <= 1"),
    ("beingh0.align.balance.BalanceConfig", {"shrink": 1.5}, "shrink=1.5 must be < 1"),
])
def test_every_config_rejects_a_bad_value_in_one_line(path, kw, needle):
    """Each config dataclass validates through validate_config: one line naming the field, its value
    and what is allowed."""
    cls = _config_class(path)
    with pytest.raises(UserValueError) as e:
        cls(**kw)
    msg = str(e.value)
    assert msg.startswith(f"invalid {cls.__name__}: ") and needle in msg and "\n" not in msg, msg


@pytest.mark.parametrize("path, kw, needle", [
    ("beingh0.tokenizer.config.TokenizerConfig", {"code_dim": 10, "groups": 3}, "code_dim=10 must be divisible by groups=3"),
    ("beingh0.tokenizer.config.TokenizerConfig", {"dilations": (1,) * 17}, "dilations=(17 items) must list at most 16"),
    ("beingh0.align.balance.BalanceConfig", {"scale_range": (1.1, 1.3)}, "scale_range=(1.1, 1.3) must satisfy lo <= 1 <= hi"),
    ("beingh0.mano.fit.FitConfig", {"device": "gpu:x"}, "device='gpu:x' is not a torch device"),
])
def test_cross_field_checks_stay_one_line(path, kw, needle):
    cls = _config_class(path)
    with pytest.raises(UserValueError) as e:
        cls(**kw)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_long_values_are_shortened_in_the_message():
    with pytest.raises(UserValueError) as e:
        Toy(size=(1,) * 5000)
    msg = str(e.value)
    assert "(5000 items)" in msg and len(msg) < 200, msg
