"""``beingh0`` command line: assembles the command groups; no logic lives here.

Each group is one module ``beingh0/cli/cmd_<group>.py`` with ``HELP`` (one line for the verb table)
and ``register(sub)`` (adds ``beingh0 <group> ...`` to the top-level sub-parsers). Options that are
fields of a config dataclass are generated from it (``beingh0.core.config``), so their defaults live
in the library only. The modules import the library inside ``register`` and the handlers: ``main``
builds only the group named on the command line, so ``beingh0 info`` never loads the tokenizer.

Errors: a user's mistake (``beingh0.core.errors.UserError``, a path that is missing, a directory,
already there or not permitted, a bad flag) prints ``beingh0: error: <one line>`` and exits 2; any
other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Before torch loads: torch's OpenMP pool and ours (beingh0._C) would otherwise spin against each
# other on small machines (see beingh0/ops/backend.py: 3.7x slower fits on 2 busy cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: The command groups, in the order ``beingh0 --help`` lists them.
GROUPS = ("info", "demo", "mano", "data", "align", "tokenizer", "pretrain", "generate", "eval", "posttrain", "policy",
          "export", "serve",
          "bench")

#: Path problems a user causes: printed as one line, exit 2.
USER_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)

def _group(name: str):
    return importlib.import_module(f"{__package__}.cmd_{name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that group gets its verbs and options (the others are
    listed with their help line), which is what ``main`` uses to start fast."""
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="beingh0",
        description="Being-H0: hand models, UniHand data, motion tokens, VLA training and deployment.",
        epilog="Run 'beingh0 VERB --help' for a verb's options. Relative paths are taken from the current "
               "directory; ../shared/data (the real test sequences) too.")
    p.add_argument("--version", action="version", version=f"beingh0 {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in GROUPS:
        mod = _group(name)
        if only is None or only == name:
            mod.register(sub)
        else:
            sub.add_parser(name, help=mod.HELP)
    return p


def is_user_error(e: BaseException) -> bool:
    """True for a user's mistake (one line, exit 2); False for a bug (traceback)."""
    from ..core.errors import UserError

    return isinstance(e, (UserError, *USER_OS_ERRORS))


def error_line(e: BaseException) -> str:
    """The message of ``e`` on one line (an OSError as 'PATH: reason' unless it carries its own message)."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), "")
    args = build_parser(only=first if first in GROUPS else "").parse_args(argv)  # usage errors: exit 2
    try:
        args.fn(args)
    except KeyboardInterrupt:
        print("beingh0: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `beingh0 info | head`: the reader left; no traceback (Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:
        if not is_user_error(e):
            raise  # a bug: keep the traceback
        print(f"beingh0: error: {error_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
