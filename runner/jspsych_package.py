"""An experiment package's own JavaScript for jsPsych (issue 17, SPEC section 4).

A package found in an experiments folder (``experiments/`` and ``EXPERIMENTS_PATH``,
as callbacks are, runner/callbacks.py) may ship ``jspsych.js`` at its root, next to its
Python modules. A page whose timeline comes from that package (the form's
``stimulus_script`` is ``<package>.module.function``) loads it before the timeline
runs, from ``/run/<experiment id>/package/<package>/jspsych.js?v=<content hash>``
(``runner.views.jspsych.package_script``). Only that one file name is ever served,
only for a package a form of the experiment names.

The file registers functions and timeline builders with ``EnsembleJsPsych.register``
and ``EnsembleJsPsych.registerTimeline`` (static/js/jspsych_dialect.js). Vendored
plugins it names by their global (``jsPsychHtmlKeyboardResponse``) are loaded before it
runs, so a builder may use them the way jsPsych's own examples do.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.urls import reverse

SCRIPT_NAME = "jspsych.js"
_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLUGIN_GLOBAL = re.compile(r"\bjsPsych[A-Z][A-Za-z0-9]*\b")


def package_of(dotted: str) -> str | None:
    """The top-level package named by a callback path (``demo.colors.trial`` -> ``demo``)."""
    name = (dotted or "").split(".", 1)[0]
    return name if _PACKAGE.match(name) and "." in (dotted or "") else None


def script_path(package: str) -> Path | None:
    """``<experiments folder>/<package>/jspsych.js`` of the first folder holding the
    package (the order Python imports it in), or None."""
    if not package or not _PACKAGE.match(package):
        return None
    for folder in settings.EXPERIMENTS_PATH:
        candidate = Path(folder) / package
        if (candidate / "__init__.py").is_file() or (candidate.is_dir() and any(candidate.glob("*.py"))):
            script = candidate / SCRIPT_NAME
            return script if script.is_file() else None
    return None


@lru_cache(maxsize=1)
def vendored_plugins() -> dict[str, str]:
    """Global name -> file slug of every vendored jsPsych plugin
    (``jsPsychHtmlKeyboardResponse`` -> ``html-keyboard-response``)."""
    folder = Path(settings.BASE_DIR) / "thirdparty" / "jsPsych" / "plugins"
    found = {}
    for path in folder.glob("plugin-*.js"):
        slug = path.name[len("plugin-") : -len(".js")]
        found["jsPsych" + "".join(part.capitalize() for part in slug.split("-"))] = slug
    return found


@lru_cache(maxsize=64)
def _info(path: str, mtime_ns: int, size: int) -> tuple[str, tuple[str, ...]]:
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:20]
    plugins = vendored_plugins()
    named = sorted({plugins[m] for m in _PLUGIN_GLOBAL.findall(data.decode("utf-8", "replace")) if m in plugins})
    return digest, tuple(named)


def script_info(path: Path) -> tuple[str, tuple[str, ...]]:
    """(content hash, plugin slugs the file names) of a package script; cached until the
    file changes (its modification time or size)."""
    stat = path.stat()
    return _info(str(path), stat.st_mtime_ns, stat.st_size)


def page_script(experiment_id: int, stimulus_script: str) -> dict | None:
    """What a page needs to load the package script of its stimulus script: ``url``
    (cache-busted by content hash) and ``plugins`` (slugs), or None without one."""
    package = package_of(stimulus_script)
    path = script_path(package) if package else None
    if path is None:
        return None
    digest, plugins = script_info(path)
    url = reverse("runner:package_script", kwargs={"experiment_id": experiment_id, "package": package})
    return {"url": f"{url}?v={digest}", "plugins": list(plugins), "package": package}


def experiment_uses(experiment, package: str) -> bool:
    """True when a form of ``experiment`` takes its stimulus script from ``package``."""
    from runner import selectors

    return any(package_of(p.stimulus_script or "") == package for p in selectors.positions(experiment))
