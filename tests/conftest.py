"""Test set-up: Triton runs under its interpreter without a GPU; the installed package is tested."""
import os

import torch

os.environ.setdefault("BEINGH0_POISON_OUTPUTS", "1")  # kernel outputs start as NaN (beingh0/ops/mano.py)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede any `import triton`

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import beingh0  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_report_header(config):
    from beingh0.info import info_text

    return [f"beingh0 from {Path(beingh0.__file__).parent}", *info_text().splitlines()[2:]]


def pytest_configure(config):
    # The suite tests the installed package. A missing compiled module fails loudly here instead of
    # silently skipping every C++ test; BEINGH0_ALLOW_NO_EXT=1 runs the pure-Python tests only.
    if os.environ.get("BEINGH0_ALLOW_NO_EXT") != "1":
        import importlib

        try:
            importlib.import_module("beingh0._C")
        except ImportError as e:
            raise pytest.UsageError(
                f"beingh0._C is not importable ({e}) from {Path(beingh0.__file__).parent}. Install the package first "
                "(`pip install torch==2.13.0 \".[test]\"`, see README), or set BEINGH0_ALLOW_NO_EXT=1.") from None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real test data folder {SHARED_DATA} is absent (it sits beside a developer checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def v21(shared_data) -> Path:
    """The real Unitree G1 + Inspire-hand episode in LeRobot v2.1 layout (../shared/data)."""
    root = shared_data / "g1_inspire_lerobot_v21"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return root
