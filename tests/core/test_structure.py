"""The developers' guide's size and coupling rules, checked on the source itself.

- no project module over 400 lines, no function over 40 (tests, migrations, bench,
  thirdparty and the virtualenv aside);
- no private name (leading underscore) imported from another module;
- no ``except ImportError`` around an import of the project's own modules.

``PENDING`` lists known offenders awaiting a fix (empty since the group-state store of
issue 15 merged).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {"tests", "migrations", "bench", "thirdparty", ".venv", "node_modules", "var", "static"}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 40

# Known offenders awaiting a fix: empty since issue 15 (groups/store) merged; a new entry
# needs a reason beside it. "path" for a module over the size, "path:function" for a function
# over it, "path:import name" for a private name imported across modules.
PENDING: set[str] = set()


def project_modules() -> list[Path]:
    """Every .py file of the project, the skipped folders (and hidden ones) pruned."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED and not d.startswith(".")]
        found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(found)


def project_packages() -> set[str]:
    """Top-level names of the project's own code (its apps and packages)."""
    names = {p.relative_to(ROOT).parts[0] for p in project_modules()}
    return {n.removesuffix(".py") for n in names}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_offenders() -> list[str]:
    return [
        f"{_name(p)}" for p in project_modules() if len(p.read_text(encoding="utf-8").splitlines()) > MAX_MODULE_LINES
    ]


def function_offenders() -> list[str]:
    found = []
    for path in project_modules():
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:  # from `def`, decorators aside
                    found.append(f"{_name(path)}:{node.name}")
    return found


def _is_project(module: str | None, level: int, packages: set[str]) -> bool:
    return level > 0 or (module or "").split(".")[0] in packages


def private_import_offenders() -> list[str]:
    packages, found = project_packages(), []
    for path in project_modules():
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.ImportFrom) and _is_project(node.module, node.level, packages):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{_name(path)}:import {alias.name}")
    return found


def _guards_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in {"ImportError", "ModuleNotFoundError"} for k in kinds)


def _imports_project(body: list[ast.stmt], packages: set[str]) -> bool:
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.ImportFrom) and _is_project(node.module, node.level, packages):
                return True
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] in packages for a in node.names):
                return True
    return False


def import_guard_offenders() -> list[str]:
    packages, found = project_packages(), []
    for path in project_modules():
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Try) and _imports_project(node.body, packages):
                if any(_guards_import_error(h) for h in node.handlers):
                    found.append(f"{_name(path)}:ImportError")
    return found


def _check(found: list[str]) -> None:
    new = sorted(set(found) - PENDING)
    assert not new, "over the rules (see the module docstring):\n" + "\n".join(new)


def test_modules_at_most_400_lines():
    _check(module_offenders())


def test_functions_at_most_40_lines():
    _check(function_offenders())


def test_no_private_name_imported_across_modules():
    _check(private_import_offenders())


def test_no_import_error_guard_around_project_imports():
    _check(import_guard_offenders())


def test_pending_lists_only_live_offenders():
    """An entry in PENDING that is fixed is an error, so the list never outlives its reason."""
    live = set(module_offenders() + function_offenders() + private_import_offenders() + import_guard_offenders())
    assert PENDING <= live, f"fixed, remove from PENDING: {sorted(PENDING - live)}"


def test_the_checks_catch_what_they_look_for():
    """The detectors themselves, on a made-up module (so a broken walker cannot pass silently)."""
    source = "\n".join(
        [
            "from runner.services import _lock",
            "try:",
            "    import groups.store",
            "except ImportError:",
            "    pass",
            "def long():",
            *["    x = 1"] * 41,
        ]
    )
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert imports[0].names[0].name == "_lock" and _is_project(imports[0].module, 0, {"runner"})
    tries = [n for n in ast.walk(tree) if isinstance(n, ast.Try)]
    assert _imports_project(tries[0].body, {"groups"}) and _guards_import_error(tries[0].handlers[0])
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    assert function.end_lineno - function.lineno + 1 == 42
    names = {_name(p) for p in project_modules()}
    assert "runner/services.py" in names and "manage.py" in names
    assert not any(n.startswith(("tests/", "bench/", "thirdparty/", ".venv/")) or "/migrations/" in n for n in names)
