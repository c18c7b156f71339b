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

from runner.models import ExperimentXForm, Response
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
        keys = page.evaluate(
            "names => Object.fromEntries(Object.entries(names).map("
            "([p, g]) => [p, Object.keys(window[g].info.data || {})]))",
            names,
        )
        return {plugin: set(values) for plugin, values in keys.items()}
    finally:
        context.close()


@pytest.fixture(scope="module")
def function_registry(browser, daphne_server) -> bool:
    """Whether the runner's scripts offer ``EnsembleJsPsych.register`` (checked on a blank page,
    because a page whose timeline ends at once navigates away before it could be asked)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{daphne_server.url}/healthz")
        for script in sorted((ROOT / "static" / "js").glob("jspsych_*.js")):
            page.add_script_tag(url=f"{daphne_server.url}/static/js/{script.name}")
        return page.evaluate("typeof (window.EnsembleJsPsych || {}).register === 'function'")
    finally:
        context.close()


def _open(page, server, media, experiment):
    """Route /plugin-media/ to the generated files, then follow a new ticket's start link."""

    def serve(route):
        content_type, body = media[route.request.url.rsplit("/", 1)[1]]
        route.fulfill(status=200, body=body, headers={"Content-Type": content_type})

    page.context.route(f"{server.url}/plugin-media/*", serve)
    page.elsewhere = []  # requests to other origins (fonts, CDNs): a page must need none
    local = (server.url, "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else page.elsewhere.append(r.url))
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
        elif kind == "drag_into":  # to the middle of an area: a fixed offset can leave it
            _drag_into(page, args[0], args[1])
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


def _drag_into(page, selector, area):
    """Drag the first ``selector`` to the middle of ``area`` (where it starts is random)."""
    item, target = page.locator(selector).first.bounding_box(), page.locator(area).first.bounding_box()
    x, y = item["x"] + item["width"] / 2, item["y"] + item["height"] / 2
    _drag(page, selector, target["x"] + target["width"] / 2 - x, target["y"] + target["height"] / 2 - y)


def _stored_trial(experiment, plugin: str) -> Response:
    rows = [r for r in Response.objects.filter(experiment=experiment, item__startswith="jspsych:")
            if r.jspsych_data.get("trial_type") == plugin]  # fmt: skip
    assert len(rows) == 1, [r.jspsych_data for r in Response.objects.filter(experiment=experiment)]
    return rows[0]


def _experiment(timeline: list):
    """A solo experiment: one form whose stimulus script returns ``timeline``, then the end."""
    return build_experiment(
        [{"name": "task", "stimulus_script": "tests.e2e.plugin_cases.timeline_from_params"},
         {"name": "end", "handler": "form_end_session"}],
        params={"timeline": timeline},
    )  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.plugin)
def test_plugin_trial_runs_and_stores_its_documented_data(
    case: Case, transactional_db, daphne_server, new_page, media, documented, function_registry
):
    experiment = _experiment(case.timeline)
    if case.functions and not function_registry:
        pytest.skip("needs {'function': name} from the experiment package's jspsych.js (issue 17, dialect core)")
    page = _open(new_page(1280, 900), daphne_server, media, experiment)
    try:
        _run(page, case)
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


#: Plugins that record from Chromium's fake devices. Their recorder's events now and then
#: race the trial's own timer inside the plugin (html-audio-response 2.x: "Cannot set
#: properties of null (setting 'innerHTML')", about one run in six), and the page stops
#: as for any failing timeline. A participant's way on is "Try again": the test takes it
#: once, and the plugin's data must then be stored as documented.
RECORDERS = {"html-audio-response", "html-video-response"}


def _run(page, case: Case) -> None:
    _drive(page, case.steps)
    page.wait_for_selector("[data-end-page], [data-timeline-error]:not(.d-none)", timeout=20_000)
    if page.locator("[data-end-page]").count() or case.plugin not in RECORDERS:
        page.wait_for_selector("[data-end-page]", timeout=1_000)
        return
    page.get_by_role("button", name="Try again").click()
    _drive(page, case.steps)
    page.wait_for_selector("[data-end-page]", timeout=20_000)


# PyEnsemble's jsPsych 6 habits (static/js/jspsych_compat.js), in the page.

COUNT_RESUMES = """(() => {
  const resume = AudioContext.prototype.resume;
  AudioContext.prototype.resume = function () { window.resumes = (window.resumes || 0) + 1; return resume.call(this); };
})();"""


def test_click_to_start_resumes_audio_before_the_audio_trial(transactional_db, daphne_server, new_page, media):
    experiment = _experiment(
        [
            {
                "type": "audio-keyboard-response",
                "stimulus": "/plugin-media/tone.wav",
                "prompt": "<p id='listen'>Listen</p>",
                "choices": ["a"],
                "click_to_start": True,
            }
        ]
    )
    page = new_page()
    page.add_init_script(COUNT_RESUMES)
    _open(page, daphne_server, media, experiment)
    page.wait_for_selector("#ensemble-click-to-start")
    assert page.evaluate("window.resumes || 0") == 0 and not page.locator("#listen").count()
    page.get_by_role("button", name="Click to start").click()
    page.wait_for_selector("#listen")
    assert page.evaluate("window.resumes") >= 1
    page.keyboard.press("a")
    page.wait_for_selector("[data-end-page]")
    rows = list(Response.objects.filter(experiment=experiment))
    assert [(r.item, r.value, r.jspsych_data["trial_type"]) for r in rows] == [
        ("jspsych:1", "a", "audio-keyboard-response")
    ]  # the start button takes index 0 and records nothing


def test_v6_button_html_string_is_a_template(transactional_db, daphne_server, new_page, media):
    experiment = _experiment(
        [
            {
                "type": "jspsych-html-button-response",
                "stimulus": "<p>Tea?</p>",
                "choices": ["Yes", "No"],
                "button_html": "<button class='jspsych-btn v6-btn'>%choice%!</button>",
            }
        ]
    )
    page = _open(new_page(1280, 900), daphne_server, media, experiment)
    page.wait_for_selector(".v6-btn")
    assert page.locator(".v6-btn").all_inner_texts() == ["Yes!", "No!"]
    page.get_by_role("button", name="No!").click()
    page.wait_for_selector("[data-end-page]")
    assert _stored_trial(experiment, "html-button-response").value == 1


def test_refused_v6_plugin_says_the_jspsych8_way_and_stores_nothing(transactional_db, daphne_server, new_page, media):
    experiment = _experiment([{"type": "video", "sources": ["/plugin-media/clip.webm"]}])
    page = _open(new_page(1280, 900), daphne_server, media, experiment)
    says = "jsPsych 6 plugin 'video' is not supported: use 'video-keyboard-response'"
    page.get_by_text(says).first.wait_for()  # wherever the page shows a failed timeline
    assert not Response.objects.filter(experiment=experiment).exists()


@pytest.mark.parametrize(("width", "fits"), [("normal", False), ("wide", True)])
def test_wide_form_shows_a_1000px_stimulus_whole(width, fits, transactional_db, daphne_server, new_page, media):
    experiment = _experiment(
        [
            {
                "type": "html-keyboard-response",
                "choices": ["a"],
                "stimulus": "<div id='band' style='width:1000px;height:30px;background:#36c'></div>",
            }
        ]
    )
    ExperimentXForm.objects.filter(experiment=experiment, order=1).update(jspsych_width=width)
    page = _open(new_page(1280, 900), daphne_server, media, experiment)
    page.wait_for_selector("#band")
    host = page.locator("#jspsych-host").bounding_box()
    assert (host["width"] >= 1000) is fits, host
    page.keyboard.press("a")
    page.wait_for_selector("[data-end-page]")


def test_survey_likert_then_our_questions_on_the_same_page(transactional_db, daphne_server, new_page, media):
    """The plugin's own <form> beside ours: both are answered and stored (the host used to sit in our form)."""
    likert = {"type": "survey-likert", "questions": [{"prompt": "Tea?", "labels": ["no", "yes"], "name": "tea"}]}
    experiment = build_experiment(
        [{"name": "task", "stimulus_script": "tests.e2e.plugin_cases.timeline_from_params",
          "questions": [{"key": "mood", "choices": ["Good", "Bad"]}]},
         {"name": "end", "handler": "form_end_session"}],
        params={"timeline": [likert]},
    )  # fmt: skip
    page = _open(new_page(1280, 900), daphne_server, media, experiment)
    page.locator("input[name='Q0'][value='1']").click()
    page.locator("#jspsych-survey-likert-next").click()
    page.get_by_label("Good", exact=True).check()
    page.get_by_role("button", name="Next").click()
    page.wait_for_selector("[data-end-page]")
    assert _stored_trial(experiment, "survey-likert").value == {"tea": 1}
    assert Response.objects.get(experiment=experiment, item="mood").value == "Good"
