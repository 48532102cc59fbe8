"""The package's shape, read from its source: layers import one way, the
import graph has no circle, and no module reaches into another package's
private names (``obj._field`` or ``from ..core._job import ...``)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "notebook_ext"

# Lower layers never import higher ones (STYLE.md: core <- executors <- ml <- ui <- magics).
LAYERS = {
    "testing": 0, "core": 0, "executors": 1, "cells": 1, "ml": 2, "ui": 3, "magics": 4, "cli": 4,
    "server": 4, "lowlevel": 5, "__init__": 5, "__main__": 5,
}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), is_pkg, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _resolve(module, is_pkg, node):
    """Absolute names a `from ... import` or `import` statement loads, within the package."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("notebook_ext")]
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("notebook_ext"):
        return []
    return [target] + [f"{target}.{a.name}" for a in node.names]


def _typing_only(tree):
    """Import statements under ``if TYPE_CHECKING:``: no import-time edge."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _graph(runtime_only=False):
    modules = {name: (is_pkg, tree) for name, is_pkg, tree in _modules()}
    edges = {name: set() for name in modules}
    private_imports = []
    for name, (is_pkg, tree) in modules.items():
        skip = _typing_only(tree) if runtime_only else set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            targets = _resolve(name, is_pkg, node)
            if isinstance(node, ast.ImportFrom) and targets:
                # `from . import sub` depends on sub, not on the package's __init__.
                subs = [t for t in targets[1:] if t in modules]
                attrs = len(targets) - 1 - len(subs)
                targets = subs + ([targets[0]] if attrs else [])
            for target in targets:
                if target in modules and target != name:
                    edges[name].add(target)
            if isinstance(node, ast.ImportFrom):
                for target in _resolve(name, is_pkg, node)[:1]:
                    imported = [target] + [f"{target}.{a.name}" for a in node.names
                                           if a.name.startswith("_") and not a.name.startswith("__")]
                    for full in imported:
                        if _package(full) != _package(name) and any(
                                p.startswith("_") and not p.startswith("__") for p in full.split(".")[1:]):
                            private_imports.append(f"{name}: {full}")
    return modules, edges, private_imports


def _package(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module):
    return LAYERS[_package(module)]


def test_no_import_circle():
    _, edges, _ = _graph(runtime_only=True)
    # Packages import their own submodules from __init__; an edge from a
    # submodule to its own package's __init__ is the circle that matters.
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layers_import_one_way():
    _, edges, _ = _graph()
    upward = [f"{a} -> {b}" for a, targets in edges.items() for b in targets
              if _layer(b) > _layer(a)]
    assert upward == []


def test_no_private_module_or_name_imported_across_packages():
    _, _, private_imports = _graph()
    assert private_imports == []


def _private_names_by_package(modules):
    """Private names (``_x``) each package defines: functions, classes,
    module globals, attributes set on self, slots."""
    defined = {}
    for name, (_, tree) in modules.items():
        names = defined.setdefault(_package(name), set())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                names.add(node.value)  # __slots__ entries
    return {pkg: {n for n in names if n.startswith("_") and not n.startswith("__")} for pkg, names in defined.items()}


def test_no_private_attribute_reached_across_packages():
    modules, _, _ = _graph()
    private = _private_names_by_package(modules)
    reaches = []
    for name, (_, tree) in modules.items():
        own = private.get(_package(name), set())
        others = set().union(*(v for k, v in private.items() if k != _package(name))) - own
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in others
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                reaches.append(f"{name}:{node.lineno}: .{node.attr}")
    assert reaches == []


def test_the_checks_see_a_violation():
    # The parser must find what it looks for: a planted circle and reach-in.
    tree = ast.parse("from ..core._job import _LOCK\nx = job._control\n")
    node = tree.body[0]
    assert _resolve("notebook_ext.ui._pump", False, node)[0] == "notebook_ext.core._job"
    attrs = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    assert attrs == ["_control"]
    modules, _, _ = _graph()
    assert "_control" in _private_names_by_package(modules)["core"]


def test_public_surface_is_importable_as_attributes():
    import subprocess
    import sys

    code = ("import notebook_ext as nx\n"
            "assert callable(nx.ml.train) and callable(nx.ui.dashboard) and callable(nx.submit_cell)\n"
            "assert nx.lowlevel.LoopThread and nx.testing.FakeClock\n"
            "print(sorted(nx.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_ui_draws_details_without_knowing_their_types():
    """A job's detail shows itself (`JobDetail.card_fields`, `notes`,
    `tables`): ui asks, and never imports ml to switch on its types."""
    modules, edges, _ = _graph()
    ui_to_ml = sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets
                      if _package(a) == "ui" and _package(b) == "ml")
    assert ui_to_ml == []
    assert "ml" in {_package(b) for a, targets in edges.items() if _package(a) == "magics" for b in targets}


def _broad(handler):
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return handler.type is None or any(isinstance(k, ast.Name) and k.id in ("Exception", "BaseException")
                                       for k in kinds)


def _unexplained_broad_excepts(source):
    """`except Exception` / `except BaseException` / bare `except` that
    neither raises (cleans up and re-raises, or raises its own error) nor
    says why on its line or the line above."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ExceptHandler) and _broad(node)):
            continue
        if any(isinstance(stmt, ast.Raise) for stmt in node.body):
            continue
        line = lines[node.lineno - 1]
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        if "#" in line.split("except", 1)[1] or above.startswith("#"):
            continue
        found.append((node.lineno, line.strip()))
    return found


def test_every_broad_except_raises_or_says_why():
    found = [f"{path.relative_to(PKG)}:{line}: {text}" for path in sorted(PKG.rglob("*.py"))
             for line, text in _unexplained_broad_excepts(path.read_text(encoding="utf-8"))]
    assert found == []


def test_the_except_check_sees_a_silent_one():
    source = ("try:\n    f()\nexcept Exception:\n    pass\n"
              "try:\n    f()\nexcept BaseException:\n    g()\n    raise\n"
              "try:\n    f()\nexcept Exception:  # a reason\n    pass\n"
              "try:\n    f()\nexcept (OSError, Exception):\n    pass\n")
    assert [line for line, _ in _unexplained_broad_excepts(source)] == [3, 16]


# Private names the standard library defines on the modules and classes we
# use (their attributes, and what their source sets on self).
_STDLIB_MODULES = (
    "threading", "concurrent.futures", "concurrent.futures.thread", "concurrent.futures.process",
    "concurrent.futures._base", "multiprocessing", "multiprocessing.process", "multiprocessing.popen_forkserver",
    "multiprocessing.popen_fork", "multiprocessing.popen_spawn_posix", "multiprocessing.connection",
    "multiprocessing.context", "multiprocessing.forkserver", "multiprocessing.resource_tracker",
    "multiprocessing.spawn", "asyncio.events", "asyncio.base_events", "asyncio.tasks", "asyncio.futures",
    "asyncio.unix_events", "subprocess", "queue", "sqlite3", "logging", "io", "contextvars", "weakref", "socket",
    "selectors", "signal", "tempfile", "traceback", "inspect", "types", "contextlib", "os", "sys",
)

#: where the package reaches a private name the standard library also defines, and why that is allowed
STDLIB_PRIVATE_ALLOWED = {
    ("executors/_process.py", "_exit"): "os._exit is public API (exit at once, no cleanup)",
    ("core/_job.py", "_state"): "our own Job's field (a Job, not a stdlib object, is read)",
    ("ml/_serve.py", "_run"): "our own Predictor's method",
}


def _stdlib_private_names():
    import importlib
    import inspect

    names = set()
    for module_name in _STDLIB_MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            names.add(name)
            if inspect.isclass(obj):
                names.update(dir(obj))
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        names.update(n.attr for n in ast.walk(ast.parse(source))
                     if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _private_reaches(tree, names):
    """(line, name) of each ``obj._name`` (not on self/cls) and each
    ``getattr(obj, "_name")`` / ``hasattr`` / ``setattr`` naming one of ``names``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name)
                                                    and node.value.id in ("self", "cls")):
            name = node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            name = node.args[1].value
        else:
            continue
        if name in names:
            found.append((node.lineno, name))
    return found


def test_no_private_attribute_of_a_standard_library_object_is_touched():
    names = _stdlib_private_names()
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        for line, name in _private_reaches(ast.parse(path.read_text(encoding="utf-8")), names):
            if (rel, name) not in STDLIB_PRIVATE_ALLOWED:
                found.append(f"{rel}:{line}: {name}")
    assert found == []


def test_the_stdlib_check_sees_a_reach():
    names = _stdlib_private_names()
    assert {"_target", "_worker", "_processes", "_popen"} <= names
    tree = ast.parse("getattr(t, '_target', None) is pool_threads._worker\nself._target = 1\n")
    assert _private_reaches(tree, names) == [(1, "_target"), (1, "_worker")]
