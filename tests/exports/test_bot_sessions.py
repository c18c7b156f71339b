"""Bot sessions (run_bots, rehearsals: ``Session.is_bot``) are left out of exports unless
the export includes them, like previews (issue 19)."""

from __future__ import annotations

import json
import zipfile
from io import StringIO

from django.core.management import call_command

from exports.selectors import ExportFilters, sessions_for_export
from runner.models import Session


def run(*args) -> str:
    out = StringIO()
    call_command("export", *args, stdout=out)
    return out.getvalue()


def test_bots_are_left_out_unless_included(solo, tmp_path):
    Session.objects.filter(pk=101).update(is_bot=True)
    default = sessions_for_export(experiment=solo, filters=ExportFilters())
    assert 101 not in set(default.values_list("pk", flat=True))
    included = sessions_for_export(experiment=solo, filters=ExportFilters(include_bots=True))
    assert 101 in set(included.values_list("pk", flat=True))

    text = run("--experiment", solo.slug, "--format", "json", "--out", str(tmp_path / "a.zip"))
    assert "2 sessions" in text
    text = run("--experiment", solo.slug, "--format", "json", "--out", str(tmp_path / "b.zip"), "--include-bots")
    assert "3 sessions" in text
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        manifest = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith("manifest.json"))))
    assert manifest["filters"]["include_bots"] is True


def test_the_editor_form_offers_the_option(solo, client, django_user_model):
    from exports.forms import ExportForm

    form = ExportForm(data={"format": "json", "columns": ["participant"], "include_bots": "on"})
    form.is_valid()
    assert form.filters()["include_bots"] is True
