"""The editor's experiment page fits a laptop screen (it was 2388 px wide in a 1280 px window)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from runner.definitions import load_file

pytestmark = [pytest.mark.browser]
PASSWORD = "pw-editor-123456"


def test_experiment_page_fits_a_laptop(daphne_server, page, transactional_db, artifacts):
    get_user_model().objects.create_superuser("editor", password=PASSWORD)
    experiment = load_file(path=settings.BASE_DIR / "experiments/demo/solo.yaml").experiment
    page.goto(f"{daphne_server.url}/editor/login/?next=/editor/runner/experiment/{experiment.pk}/change/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(f"**/experiment/{experiment.pk}/change/")
    page.screenshot(path=str(artifacts / "editor-experiment.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the experiment page is {width} px wide in a 1280 px window"
