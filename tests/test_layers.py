"""The layer contract (docs/architecture.md), enforced by reading every import of the source tree.

Each module of ``beingh0/`` (Triton kernels in ``beingh0/kernels/`` included) is parsed with
``ast``; every import counts, including those inside functions (lazy imports), ``TYPE_CHECKING``
blocks and constant ``importlib.import_module("...")`` calls. A module may import its own layer
and the layers below it, never one above it or a sibling beside it (``align`` and ``tokenizer``;
``cli`` is the only layer above ``benchmark``). Private names (``_x``) and private modules may be
imported only inside their own package folder. Module-level imports of third-party code are the
declared runtime dependencies only; optional extras are imported lazily (inside functions).
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The stack, bottom to top. Entries in one tuple are siblings: neither may import the other.
STACK = (
    ("core",),
    ("ops",),
    ("mano",),
    ("motion",),
    ("data",),
    ("align", "tokenizer"),
    ("train",),
    ("vla",),
    ("policy",),
    ("deploy",),
    ("app",),
    ("benchmark",),
    ("cli",),
)
RANK = {name: i for i, names in enumerate(STACK) for name in names}
#: Modules at the package root and the layer each belongs to. The root ``beingh0/__init__.py``
#: (version only) sits below everything and imports nothing of the package.
ROOT_MODULES = {"info": "ops", "testing": "ops", "_C": "ops", "kernels": "ops", "__main__": "cli"}

#: Known violations that other parts of issue 9 are removing; the merge empties this list.
#: (importer, imported module, name or None for the module itself)
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()  # (importer, module, name): none
ALLOWED_UPWARD: set[tuple[str, str]] = set()  # (importer, imported): none today

#: Third-party packages a module may import at module level: pyproject's runtime dependencies.
RUNTIME_DEPS = {"torch", "numpy", "matplotlib", "tqdm", "safetensors", "transformers", "tokenizers",
                "pyarrow", "av", "msgpack", "onnx", "onnxscript", "onnxruntime",
                "opencv-python-headless"}
#: Module-level imports of optional packages that are known and allowed. Triton kernels are Triton
#: code by nature: ``beingh0.ops`` imports them only for the triton backend (and CI's import check
#: skips them where triton is absent).
ALLOWED_TOPLEVEL_OPTIONAL = {
    ("beingh0.kernels.grq", "triton"), ("beingh0.kernels.mano", "triton"), ("beingh0.kernels.warp", "triton"),
    ("beingh0.kernels.ce", "triton"),
}


@dataclass(frozen=True)
class Imp:
    importer: str
    target: str           # dotted module imported (for `from m import x`: m.x when that is a module, else m)
    name: str | None      # the imported name for `from m import name`, else None
    line: int
    toplevel: bool        # runs at import time (not inside a function)
    guarded: bool         # inside try/except ImportError or `if TYPE_CHECKING`


def _modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the package."""
    out = {}
    for f in sorted((REPO / "beingh0").rglob("*.py")):
        rel = f.relative_to(REPO / "beingh0")
        parts = ["beingh0", *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


MODULES = _modules()
PACKAGES = {m for m, f in MODULES.items() if f.name == "__init__.py"}


def _is_module(name: str) -> bool:
    return name in MODULES or name == "beingh0._C"


def _resolve(importer: str, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".") if importer in PACKAGES else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imports(name: str, path: Path) -> list[Imp]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[Imp] = []

    def visit(node, toplevel: bool, guarded: bool):
        for child in ast.iter_child_nodes(node):
            tl, gd = toplevel, guarded
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                tl = False
            elif isinstance(child, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    or isinstance(h.type, ast.Tuple) and any(getattr(e, "id", "") in ("ImportError", "ModuleNotFoundError") for e in h.type.elts)
                    for h in child.handlers):
                gd = True
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                gd = True
            if isinstance(child, ast.Import):
                for a in child.names:
                    found.append(Imp(name, a.name, None, child.lineno, tl, gd))
            elif isinstance(child, ast.ImportFrom):
                mod = _resolve(name, child.level, child.module)
                for a in child.names:
                    sub = f"{mod}.{a.name}"
                    if _is_module(sub):
                        found.append(Imp(name, sub, None, child.lineno, tl, gd))
                    else:
                        found.append(Imp(name, mod, a.name, child.lineno, tl, gd))
            elif (isinstance(child, ast.Call) and ast.unparse(child.func).endswith("import_module") and child.args
                  and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str)):
                pkg = child.args[1] if len(child.args) > 1 else None
                target = child.args[0].value
                if target.startswith(".") and pkg is not None:
                    target = _resolve(name, len(target) - len(target.lstrip(".")), target.lstrip(".") or None)
                found.append(Imp(name, target, None, child.lineno, tl, gd))
            visit(child, tl, gd)

    visit(tree, True, False)
    return found


ALL_IMPORTS = [imp for m, f in MODULES.items() for imp in _imports(m, f)]


def layer_of(module: str) -> str | None:
    """The layer of a beingh0 module (None: the root package ``beingh0`` itself)."""
    parts = module.split(".")
    if parts[0] != "beingh0":
        raise ValueError(module)
    if len(parts) == 1:
        return None
    top = parts[1]
    if top in RANK:
        return top
    if top in ROOT_MODULES:
        return ROOT_MODULES[top]
    raise AssertionError(f"{module}: no layer assigned; add its package to STACK in tests/test_layers.py "
                         "and docs/architecture.md")


def _package_dir(module: str) -> str:
    return module if module in PACKAGES else module.rpartition(".")[0]


def _where(imp: Imp) -> str:
    return f"{MODULES[imp.importer].relative_to(REPO)}:{imp.line}"


# ------------------------------------------------------------------------------------------------


def test_the_walk_sees_every_layer_and_lazy_imports():
    assert len(MODULES) > 80 and "beingh0.kernels.grq" in MODULES and "beingh0.cli.main" in MODULES
    layers = {layer_of(m) for m in MODULES}
    assert {"core", "ops", "mano", "motion", "data", "align", "tokenizer", "benchmark", "cli"} <= layers
    assert any(not i.toplevel for i in ALL_IMPORTS if i.target.startswith("beingh0."))  # lazy ones are read


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_no_import_reaches_up_or_sideways():
    bad = []
    for imp in ALL_IMPORTS:
        if imp.target != "beingh0" and not imp.target.startswith("beingh0."):
            continue
        src, dst = layer_of(imp.importer), layer_of(imp.target)
        if imp.importer == "beingh0":  # the root package imports nothing of its own
            bad.append(f"{_where(imp)}: the root package beingh0 imports {imp.target}")
            continue
        if dst is None or src == dst or RANK[dst] < RANK[src] or (imp.importer, imp.target) in ALLOWED_UPWARD:
            continue
        how = "sideways (siblings)" if RANK[dst] == RANK[src] else "up the stack"
        bad.append(f"{_where(imp)}: {imp.importer} ({src}) imports {imp.target} ({dst}), {how}")
    assert not bad, "layer violations (docs/architecture.md):\n" + "\n".join(bad)


def test_no_private_imports_across_packages():
    bad, used = [], set()
    for imp in ALL_IMPORTS:
        if not imp.target.startswith("beingh0"):
            continue
        private_name = imp.name is not None and imp.name.startswith("_") and not imp.name.startswith("__")
        private_mod = [p for p in imp.target.split(".")[1:] if p.startswith("_") and not p.startswith("__") and p != "_C"]
        if not (private_name or private_mod):
            continue
        owner = imp.target if private_name else imp.target.split("." + private_mod[0])[0]
        owner_pkg = _package_dir(owner) if private_name else owner
        if _package_dir(imp.importer) == owner_pkg or imp.importer == owner_pkg:
            continue
        key = (imp.importer, imp.target, imp.name)
        if key in ALLOWED_PRIVATE:
            used.add(key)
            continue
        bad.append(f"{_where(imp)}: {imp.importer} imports private {imp.target}{'.' + imp.name if imp.name else ''}")
    assert not bad, "make these public (or move them to a shared lower module):\n" + "\n".join(bad)
    stale = ALLOWED_PRIVATE - used
    assert not stale, f"fixed: remove from ALLOWED_PRIVATE in tests/test_layers.py: {sorted(stale)}"


def test_module_level_imports_are_runtime_dependencies_only():
    """A plain ``pip install .`` (no extras) must import every module: optional packages lazily."""
    stdlib = set(sys.stdlib_module_names)
    bad, used = [], set()
    for imp in ALL_IMPORTS:
        top = imp.target.split(".")[0]
        if not imp.toplevel or imp.guarded or top in ("beingh0", "__future__") or top in stdlib or top in RUNTIME_DEPS:
            continue
        if (imp.importer, top) in ALLOWED_TOPLEVEL_OPTIONAL:
            used.add((imp.importer, top))
            continue
        bad.append(f"{_where(imp)}: {imp.importer} imports {top} at module level (not a runtime dependency)")
    assert not bad, "import optional packages inside the functions that need them:\n" + "\n".join(bad)
    stale = ALLOWED_TOPLEVEL_OPTIONAL - used
    assert not stale, f"fixed: remove from ALLOWED_TOPLEVEL_OPTIONAL in tests/test_layers.py: {sorted(stale)}"


def test_runtime_dependencies_match_pyproject():
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip() for d in deps}
    assert names == RUNTIME_DEPS


# -- the checker itself catches what it should -----------------------------------------------


def _check_source(tmp_path, importer: str, code: str) -> list[Imp]:
    f = tmp_path / "m.py"
    f.write_text(code)
    return _imports(importer, f)


def test_checker_sees_lazy_relative_and_dynamic_imports(tmp_path):
    imps = _check_source(tmp_path, "beingh0.data.build", (
        "import importlib\n"
        "def f():\n    from ..tokenizer.model import MotionTokenizer\n"
        "def g():\n    from ..align import balance\n"
        "importlib.import_module('beingh0.vla')\n"
        "try:\n    import h5py\nexcept ImportError:\n    h5py = None\n"))
    got = {(i.target, i.name, i.toplevel, i.guarded) for i in imps}
    assert ("beingh0.tokenizer.model", "MotionTokenizer", False, False) in got
    assert ("beingh0.align.balance", None, False, False) in got
    assert ("beingh0.vla", None, True, False) in got and ("h5py", None, True, True) in got
    ups = [i for i in imps if i.target.startswith("beingh0.") and RANK[layer_of(i.target)] > RANK["data"]]
    assert len(ups) == 3


def test_siblings_are_apart():
    assert RANK["align"] == RANK["tokenizer"] and RANK["cli"] > RANK["benchmark"] > RANK["deploy"]
    assert [n for names in STACK for n in names][:5] == ["core", "ops", "mano", "motion", "data"]


def test_architecture_doc_matches_the_stack():
    doc = (REPO / "docs" / "architecture.md").read_text()
    order = [n for names in STACK for n in names]
    pos = [doc.index(f"`beingh0.{n}`") for n in order]
    assert pos == sorted(pos), "docs/architecture.md lists the layers in another order than tests/test_layers.py"
