"""CI, bare-install stage: import every module of the installed beingh0 (run outside the checkout).

A plain ``pip install .`` (no extras) must import all of them: optional packages are imported
inside the functions that need them. The one exception is ``beingh0.kernels`` (Triton source,
imported by ``beingh0.ops`` only for the triton backend), skipped where triton is absent.
"""
import importlib
import importlib.util
import pkgutil
import sys
import traceback

import beingh0

print(f"beingh0 {beingh0.__version__} from {beingh0.__path__[0]}")
has_triton = importlib.util.find_spec("triton") is not None
names, failed, skipped = [], [], []
for m in pkgutil.walk_packages(beingh0.__path__, "beingh0."):
    if m.name == "beingh0.__main__":  # runs the command line
        continue
    if (m.name == "beingh0.kernels" or m.name.startswith("beingh0.kernels.")) and not has_triton:
        skipped.append(m.name)
        continue
    names.append(m.name)
    try:
        importlib.import_module(m.name)
    except Exception:
        failed.append(m.name)
        print(f"--- {m.name} does not import:\n{traceback.format_exc()}", file=sys.stderr)
print(f"imported {len(names) - len(failed)}/{len(names)} modules"
      + (f"; skipped {len(skipped)} Triton kernel modules (triton not installed)" if skipped else ""))
if failed:
    sys.exit(f"modules that do not import without extras: {', '.join(failed)}")
if len(names) < 50:
    sys.exit(f"only {len(names)} modules found: is the package installed completely?")
