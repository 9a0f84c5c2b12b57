"""``beingh0 info``: versions, devices and which kernel backends this machine has."""
from __future__ import annotations

HELP = "versions, devices and which kernel backends this machine has (and why not)"


def _info(a):
    from ..info import info_text

    print(info_text())


def register(sub) -> None:
    s = sub.add_parser("info", help=HELP, description=HELP)
    s.set_defaults(fn=_info)
