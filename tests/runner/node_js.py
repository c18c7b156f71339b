"""Running a JS module's checks in node: the script prints one JSON object."""

from __future__ import annotations

import json
import shutil
import subprocess

from tests.conftest import missing_service


def node_result(script: str, *args):
    """Run ``script`` (node ``-e``, with ``args`` in ``process.argv``) and parse what it prints."""
    node = shutil.which("node")
    if not node:
        missing_service("node is not installed (the JS modules are tested with node)")
    proc = subprocess.run([node, "-e", script, *map(str, args)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
