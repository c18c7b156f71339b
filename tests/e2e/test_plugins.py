"""Every vendored jsPsych 8 plugin runs in a real page (issue 17).

One case per file in thirdparty/jsPsych/plugins/ (``plugin_cases.CASES``): a solo
experiment whose stimulus script returns the case's timeline, driven in Chromium with fake
camera and microphone, then the stored Response row of the plugin's trial must hold the
data keys the plugin documents (its ``info.data``, read in the page) and the expected
values. Media come from ``plugin_media`` through a Playwright route on the server's origin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.models import Response
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.plugin_cases import CASES, Case
from tests.e2e.plugin_media import media_files
from tests.factories import TicketFactory
from tests.runner.builders import build_experiment

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "thirdparty" / "jsPsych" / "plugins"
CHROMIUM_EXTRA_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
JSPSYCH_KEYS = {"trial_type", "trial_index", "time_elapsed"}

# Functions a case names with {"function": ...}, registered as an experiment package's
# jspsych.js would (before the timeline runs) where the runner has the registry.
REGISTER_FUNCTIONS = """
document.addEventListener("DOMContentLoaded", () => {
  const E = window.EnsembleJsPsych;
  if (!E || typeof E.register !== "function") return;
  E.register("plugin_test_value", () => 42);
  E.register("plugin_test_draw", (canvas) => {
    const ctx = canvas.getContext("2d"); ctx.fillStyle = "#36c"; ctx.fillRect(10, 10, 80, 40);
  });
  E.register("plugin_test_square", (value) =>
    `<div id="square" style="width:${Math.round(value * 200)}px;height:40px;background:#36c"></div>`);
});
"""


def global_name(plugin: str) -> str:
    return "jsPsych" + "".join(part.capitalize() for part in plugin.split("-"))


def test_every_vendored_plugin_has_a_case():
    vendored = sorted(p.stem.removeprefix("plugin-") for p in PLUGINS.glob("plugin-*.js"))
    assert sorted(case.plugin for case in CASES) == vendored


@pytest.fixture(scope="module")
def media(browser):
    return media_files(browser)


@pytest.fixture(scope="module")
def documented(browser, daphne_server) -> dict[str, set[str]]:
    """Each vendored plugin's documented data keys (``info.data``), read in Chromium."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{daphne_server.url}/healthz")
        static = f"{daphne_server.url}/static/jsPsych/"
        page.add_script_tag(url=static + "jspsych.js")
        for case in CASES:
            page.add_script_tag(url=f"{static}plugins/plugin-{case.plugin}.js")
        names = {case.plugin: global_name(case.plugin) for case in CASES}
        keys = page.evaluate("names => Object.fromEntries(Object.entries(names).map("
                             "([p, g]) => [p, Object.keys(window[g].info.data || {})]))", names)
        return {plugin: set(values) for plugin, values in keys.items()}
    finally:
        context.close()


def _open(new_page, server, media, experiment):
    page = new_page(1280, 900)

    def serve(route):
        content_type, body = media[route.request.url.rsplit("/", 1)[1]]
        route.fulfill(status=200, body=body, headers={"Content-Type": content_type})

    page.context.route(f"{server.url}/plugin-media/*", serve)
    page.elsewhere = []  # requests to other origins (fonts, CDNs): a page must need none
    page.on("request", lambda r: None if r.url.startswith((server.url, "data:", "blob:")) else page.elsewhere.append(r.url))
    page.add_init_script(REGISTER_FUNCTIONS)
    ticket = TicketFactory(experiment=experiment)
    page.goto(f"{server.url}/run/{experiment.pk}/start/?tc={ticket.code}")
    return page


def _drive(page, steps):
    for step in steps:
        kind, *args = step
        if kind == "wait":
            page.wait_for_selector(args[0])
        elif kind == "key":
            page.keyboard.press("Space" if args[0] == " " else args[0])
        elif kind == "click":
            page.locator(args[0]).first.click()
        elif kind == "button":
            page.get_by_role("button", name=args[0], exact=True).first.click()
        elif kind == "fill":
            page.locator(args[0]).first.fill(args[1])
        elif kind == "drag":
            _drag(page, args[0], args[1], args[2])
        elif kind == "draw":
            _drag(page, args[0], 40, 30)
        elif kind == "sleep":
            page.wait_for_timeout(args[0])
        else:
            raise AssertionError(f"unknown step {step!r}")


def _drag(page, selector, dx, dy):
    box = page.locator(selector).first.bounding_box()
    x, y = box["x"] + box["width"] / 3, box["y"] + box["height"] / 3
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=3)
    page.mouse.move(x + dx, y + dy, steps=3)
    page.mouse.up()


def _stored_trial(experiment, plugin: str) -> Response:
    rows = [r for r in Response.objects.filter(experiment=experiment, item__startswith="jspsych:")
            if r.jspsych_data.get("trial_type") == plugin]  # fmt: skip
    assert len(rows) == 1, [r.jspsych_data for r in Response.objects.filter(experiment=experiment)]
    return rows[0]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.plugin)
def test_plugin_trial_runs_and_stores_its_documented_data(case: Case, transactional_db, daphne_server, new_page,
                                                          media, documented):
    experiment = build_experiment(
        [{"name": "task", "stimulus_script": "tests.e2e.plugin_cases.timeline_from_params"},
         {"name": "end", "handler": "form_end_session"}],
        params={"timeline": case.timeline},
    )  # fmt: skip
    page = _open(new_page, daphne_server, media, experiment)
    if case.functions and not page.evaluate("typeof (window.EnsembleJsPsych || {}).register === 'function'"):
        pytest.skip("needs {'function': name} from the experiment package's jspsych.js (issue 17, dialect core)")
    try:
        _drive(page, case.steps)
        page.wait_for_selector("[data-end-page]", timeout=20_000)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"plugin-{case.plugin}.png"), full_page=True)
        raise
    row = _stored_trial(experiment, case.plugin)
    data = row.jspsych_data
    missing = (documented[case.plugin] - set(case.absent)) | JSPSYCH_KEYS
    assert missing <= data.keys(), f"{case.plugin}: no {sorted(missing - data.keys())} in {sorted(data)}"
    for key, value in case.expect.items():
        assert data[key] == value, (case.plugin, key, data[key])
    assert row.value == data.get("response")
    assert page.elsewhere == []
    assert isinstance(data["time_elapsed"], int | float) and data["time_elapsed"] > 0
