"""The console shows the context store as down while it is (issue 14, cause 7): a real
daphne server on a PRIVATE redis-server (never the shared one), the console in Chromium;
Redis stops, the notice appears, Redis comes back, the notice goes."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from groups import services
from runner.definitions.loader import load_file

PASSWORD = "pw-notice-123456"


@pytest.mark.browser
def test_console_shows_the_context_store_down_while_it_is(live_server_factory, private_redis, new_page,
                                                          transactional_db):  # fmt: skip
    server = live_server_factory(env={"REDIS_URL": private_redis.url, "CHANNEL_LAYER_PREFIX": "notice-test"})
    try:
        staff = get_user_model().objects.create_user("lead", password=PASSWORD, is_staff=True)
        demo = load_file(path=settings.BASE_DIR / "experiments/demo/colors.yaml").experiment
        gs = services.start_group_session(experiment=demo, size=3, experimenter=staff)
        console = new_page()
        console.goto(f"{server.url}/group/session/status/{gs.pk}/")
        console.fill("#id_username", "lead")
        console.fill("#id_password", PASSWORD)
        console.locator("input[type=submit], button[type=submit]").first.click()
        console.wait_for_url(f"**/group/session/status/{gs.pk}/")
        notice = console.locator("[data-store-down]")
        console.locator("[data-link]", has_text="online").wait_for()
        assert notice.is_hidden()

        private_redis.stop()
        notice.wait_for(state="visible", timeout=15_000)  # asked every 5 s
        assert "context store does not answer" in notice.inner_text()

        private_redis.start()
        notice.wait_for(state="hidden", timeout=15_000)
    finally:
        server.stop()
