"""Form handlers: a registry from PyEnsemble handler name to handler class.

API (for other apps)::

    from runner.handlers import BaseHandler, register_handler, get_handler

    class LockstepGroupTrial(GroupTrialHandler):   # or BaseHandler
        ...

    # in GroupsConfig.ready():
    register_handler("group_trial", LockstepGroupTrial, replace=True)

``register_handler`` refuses to overwrite a name unless ``replace=True``. The
built-in handlers (all 11 names of ``runner.models.Handler``) are registered when
this package is imported, so a later ``replace=True`` always wins. ``get_handler``
returns a fresh instance per call; handlers keep no per-request state on ``self``.
"""

from __future__ import annotations

from .base import BaseHandler, BatchStep, Outcome, Page, Prepared

_REGISTRY: dict[str, type[BaseHandler]] = {}


class UnknownHandler(LookupError):
    pass


def register_handler(name: str, cls: type[BaseHandler], *, replace: bool = False) -> type[BaseHandler]:
    """Register ``cls`` under ``name``. Raises ValueError if taken and ``replace`` is False."""
    if not (isinstance(cls, type) and issubclass(cls, BaseHandler)):
        raise TypeError(f"{cls!r} is not a BaseHandler subclass")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not cls:
        raise ValueError(f"handler {name!r} is already registered ({_REGISTRY[name].__qualname__})")
    _REGISTRY[name] = cls
    return cls


def register(name: str, *, replace: bool = False):
    """Class decorator form of :func:`register_handler`."""

    def decorate(cls):
        return register_handler(name, cls, replace=replace)

    return decorate


def get_handler(name: str) -> BaseHandler:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UnknownHandler(f"no form handler named {name!r}") from None


def registered() -> dict[str, type[BaseHandler]]:
    """A copy of the registry (name -> class)."""
    return dict(_REGISTRY)


from . import builtin, people  # noqa: E402,F401  (registers the built-in handlers)

__all__ = [
    "BaseHandler",
    "BatchStep",
    "Outcome",
    "Page",
    "Prepared",
    "UnknownHandler",
    "get_handler",
    "register",
    "register_handler",
    "registered",
]
