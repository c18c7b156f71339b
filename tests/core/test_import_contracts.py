"""Issue 15: the import rules of groups/ and realtime/, checked by `make test` and CI.

- the import-linter contracts in pyproject.toml (``realtime`` imports no domain app,
  the state machine stays pure, one direction through the layers of ``groups``,
  ``groups.store`` and ``realtime``);
- no import circle that holds a module of ``groups``, ``realtime`` or ``project.core``
  (imports inside functions count: a debugger and a newcomer follow them too);
- no ``except ImportError`` guard around the project's own modules there, and no
  private name (``_name``) imported from another module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("groups", "realtime", "runner", "exports", "project", "experiments")
OURS = ("groups", "realtime", "project.core")  # the packages these rules hold for (issue 15's scope)


def _ours(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in OURS) and ".migrations" not in module


def circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module) of
    ``imports`` (module -> modules it imports), each sorted. Iterative Tarjan."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_circles_finds_a_circle_and_only_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"c"}}) == []


def _project_graph() -> dict[str, set[str]]:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    modules = {m for m in graph.modules if ".migrations" not in m}
    return {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}


def test_the_import_contracts_hold():
    """``lint-imports`` in its own process (as by hand: no test settings, no cache)."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_import_circle_holds_a_module_of_groups_realtime_or_core():
    mine = [c for c in circles(_project_graph()) if any(_ours(m) for m in c)]
    assert mine == []


def _sources():
    for package in ("groups", "realtime", "project/core"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), str(path))


def _imports_of(node) -> list[str]:
    names = []
    for inner in ast.walk(node):
        if isinstance(inner, ast.Import):
            names += [alias.name for alias in inner.names]
        elif isinstance(inner, ast.ImportFrom):
            names.append("." * inner.level + (inner.module or ""))
    return names


def test_no_import_error_guard_around_our_own_modules():
    guarded = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not catches & {"ImportError", "ModuleNotFoundError"}:
                continue
            ours = [n for n in _imports_of(ast.Module(body=node.body, type_ignores=[]))
                    if n.startswith(".") or n.split(".")[0] in PACKAGES]  # fmt: skip
            if ours:
                guarded.append(f"{path.relative_to(ROOT)}:{node.lineno} {ours}")
    assert guarded == []


def test_no_private_name_is_imported_from_another_module():
    private = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                ours = node.level > 0 or (node.module or "").split(".")[0] in PACKAGES
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if ours and names:
                    private.append(f"{path.relative_to(ROOT)}:{node.lineno} {names}")
    assert private == []
