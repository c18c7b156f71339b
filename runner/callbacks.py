"""Resolving experiment callbacks (SPEC section 4).

A callback is a dotted path ``package.module.function`` (or ``package.function``
exposed in the package's ``__init__``), looked up in the project's
``experiments/`` folder and every folder in ``EXPERIMENTS_PATH``. Resolution
happens at load time (``load_experiment``) so a typo is an error there, not in
front of a participant.
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from django.conf import settings


class CallbackError(Exception):
    """A dotted path that does not resolve to a callable (or a module)."""


def ensure_experiments_on_path() -> None:
    for folder in reversed([str(p) for p in settings.EXPERIMENTS_PATH]):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _roots() -> tuple[list[Path], list[Path]]:
    """(allowed, refused) folders for callback code: the experiments folders and the
    project's own source are allowed; the interpreter, its standard library and installed
    packages (even a virtualenv inside the project) are not."""
    allowed = [Path(p).resolve() for p in settings.EXPERIMENTS_PATH]
    allowed.append(Path(settings.BASE_DIR).resolve())
    refused = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.exec_prefix).resolve()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            refused.add(Path(path).resolve())
    return allowed, sorted(refused)


def check_origin(dotted: str, module) -> None:
    """Refuse code that does not live in an experiments folder or the project (``os.system``,
    ``sys.exit``, an installed package's function): a definition names experiment code only."""
    file = getattr(module, "__file__", None)
    if not file:
        raise CallbackError(f"{dotted!r} is built into Python, not experiment code")
    path = Path(file).resolve()
    allowed, refused = _roots()

    def depth(roots: list[Path]) -> int:  # the most specific root holding ``path`` decides
        return max((len(root.parts) for root in roots if path.is_relative_to(root)), default=-1)

    if depth(allowed) <= depth(refused):  # e.g. BASE_DIR/.venv is refused although BASE_DIR is allowed
        raise CallbackError(f"{dotted!r} is not in the experiments folders (it comes from {module.__name__})")


def resolve_module(dotted: str):
    """Import and return the module ``dotted`` (used for ``group_flow``); it must live in an
    experiments folder or the project."""
    ensure_experiments_on_path()
    try:
        module = importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        raise CallbackError(f"module {dotted!r} not found in the experiments folders ({exc})") from exc
    except Exception as exc:  # a module that fails to import is an error at load time too
        raise CallbackError(f"module {dotted!r} failed to import: {type(exc).__name__}: {exc}") from exc
    check_origin(dotted, module)
    return module


def resolve_callable(dotted: str) -> Callable:
    """Return the function named by ``dotted``; raise CallbackError if there is none.

    Walks the path from the longest importable module prefix, then along attributes,
    as PyEnsemble's method specification parser does. The function must be defined in
    an experiments folder (or the project's source), never in Python or an installed
    package (:func:`check_origin`).
    """
    if not dotted or "." not in dotted:
        raise CallbackError(f"{dotted!r} is not a dotted path like package.module.function")
    ensure_experiments_on_path()
    parts = dotted.split(".")
    module = None
    for cut in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and not name.startswith(exc.name) and exc.name != name:
                # The module exists but imports something missing.
                raise CallbackError(f"{name!r} failed to import: {exc}") from exc
            continue
        except Exception as exc:
            raise CallbackError(f"{name!r} failed to import: {type(exc).__name__}: {exc}") from exc
        target = module
        try:
            for attr in parts[cut:]:
                target = getattr(target, attr)
        except AttributeError:
            raise CallbackError(f"{dotted!r}: {name!r} has no attribute {'.'.join(parts[cut:])!r}") from None
        if not callable(target):
            raise CallbackError(f"{dotted!r} is not callable")
        # Where the function is defined counts, not the path: ``demo.solo.os.system`` is os.system.
        check_origin(dotted, sys.modules.get(getattr(target, "__module__", None) or ""))
        return target
    raise CallbackError(f"{dotted!r}: no module {parts[0]!r} in the experiments folders")
