"""The projector view at 1920x1080 in Chromium: the participant code at least 20 % of the
screen height, the join link, a QR code that decodes (zxing-cpp, from the screenshot) to
the join link with the code filled in, and "n joined" following participants live. The
console hides the experimenter code until asked."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model

from groups import services
from tests.e2e.pages import attach_console
from tests.runner.builders import build_lockstep_experiment

pytestmark = [pytest.mark.browser]
PASSWORD = "pw-projector-123456"


def _decode_qr(png: bytes) -> list[str]:
    import zxingcpp
    from PIL import Image

    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_projector_view_and_hidden_experimenter_code(daphne_server, new_page, transactional_db, artifacts):
    get_user_model().objects.create_user("lead", password=PASSWORD, is_staff=True)
    experiment = build_lockstep_experiment(2, title="Colour judgement")
    gs = services.start_group_session(experiment=experiment, size=2)
    base = daphne_server.url

    wall = new_page(width=1920, height=1080)
    attach_console(wall, base, gs, username="lead", password=PASSWORD)
    code = wall.get_by_test_id("experimenter-code")
    assert code.is_hidden()  # a projected console does not show the room the experimenter code
    wall.get_by_role("button", name="Show experimenter code").click()
    assert code.is_visible() and code.inner_text() == gs.experimenter_code
    wall.get_by_role("button", name="Hide experimenter code").click()
    assert code.is_hidden()

    # The console on a tablet (portrait): no sideways scrolling, the controls reachable.
    wall.set_viewport_size({"width": 820, "height": 1180})
    wall.reload()
    wall.locator("[data-link]", has_text="online").wait_for()
    assert wall.evaluate("document.documentElement.scrollWidth") <= 820
    assert wall.get_by_role("button", name="Start", exact=True).is_visible()
    wall.screenshot(path=str(artifacts / "console-tablet.png"), full_page=True)
    wall.set_viewport_size({"width": 1920, "height": 1080})

    wall.goto(f"{base}/group/session/projector/{gs.pk}/")
    shown = wall.get_by_test_id("projector-code")
    assert shown.inner_text() == gs.participant_code
    box = shown.bounding_box()
    assert box["height"] >= 216, box  # 20 % of 1080 px
    assert gs.experimenter_code not in wall.content()
    join = f"{base}/group/session/attach/participant/?experiment={experiment.pk}"
    assert wall.get_by_test_id("projector-url").inner_text() == join
    wall.locator("[data-joined]", has_text="0").wait_for()
    assert wall.evaluate("document.documentElement.scrollHeight") <= 1080  # one screen, no scrolling
    shot = wall.screenshot(path=str(artifacts / "projector-1920x1080.png"))
    with_code = f"{join}&code={gs.participant_code}"
    assert _decode_qr(shot) == [with_code]

    # A participant scans the code: the page opens with the code filled in; "1 joined" follows.
    phone = new_page(width=390, height=844)
    phone.goto(with_code)
    assert phone.locator("#id_code").input_value() == gs.participant_code
    phone.get_by_role("button", name="Join").click()
    phone.get_by_text("Waiting for the experimenter to start").wait_for()
    wall.locator("[data-joined]", has_text="1").wait_for()
    wall.screenshot(path=str(artifacts / "projector-1-joined.png"))
