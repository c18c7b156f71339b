"""PyEnsemble / jsPsych 6 habits on jsPsych 8 (static/js/jspsych_compat.js), at the JS level (Node):
what is translated and what is refused with a message naming the jsPsych 8 way."""

from pathlib import Path

import pytest

from tests.runner.node_js import node_result

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "static" / "js" / "jspsych_runner.js"
COMPAT = ROOT / "static" / "js" / "jspsych_compat.js"

SCRIPT = """
global.window = undefined;
globalThis.jsPsychModule = {ParameterType: {STRING: "string", HTML_STRING: "html"}};
require(process.argv[1]);
require(process.argv[2]);
const C = globalThis.EnsembleJsPsychCompat;
function attempt(timeline) {
  try { return {ok: C.translateTimeline(timeline)}; } catch (e) { return {error: e.message}; }
}
const one = C.buttonTemplate('<button class="jspsych-btn">%choice%</button>');
const each = C.buttonTemplate(['<b>%choice%</b>', '<i>%choice% %choice%</i>']);
const kept = C.translateTimeline([{type: "html-button-response", button_html: {"function": "fancy"}},
                                  {type: "html-button-response", button_html: {"timelineVariable": "html"}}]);
const gated = C.translateTimeline([{type: "audio-keyboard-response", stimulus: "a.wav", click_to_start: "Start"}])[0];
const plain = C.translateTimeline([{type: "audio-keyboard-response", stimulus: "a.wav", click_to_start: false}])[0];
const out = {
  one: [one("Yes", 0), one("No", 1)],
  kept: kept.map(n => n.button_html),
  each: [each("A", 0), each("B", 1), each("C", 2)],
  gate: {label: gated.timeline[0].button_label, record_data: gated.timeline[0].record_data,
         is_class: gated.timeline[0].type === C.ClickToStart, info: C.ClickToStart.info.name,
         trial: gated.timeline[1]},
  plain: plain,
  renamed: C.translateTimeline([
    {type: "jspsych-video-keyboard-response", sources: ["v.mp4"]},
    {type: "html-slider-response", start: 20, timing_response: 1000, timing_post_trial: 50},
    {type: "html-keyboard-response", start: 3},
    {timeline: [{type: "image-slider-response", start: 7, timing_stim: 300}]},
  ]),
  refused: {
    video: attempt([{type: "video", sources: ["v.mp4"]}]),
    nested: attempt([{timeline: [{type: "jspsych-single-stim", stimulus: "x"}]}]),
    is_html: attempt([{type: "html-keyboard-response", is_html: true}]),
    margin: attempt([{type: "html-button-response", choices: ["a"], margin_vertical: "8px"}]),
    keycodes: attempt([{type: "html-keyboard-response", choices: [70, 74]}]),
    key_answer: attempt([{type: "categorize-html", key_answer: 70}]),
    button_html: attempt([{type: "html-button-response", button_html: {"x": 1}}]),
    both: attempt([{type: "html-slider-response", start: 1, slider_start: 2}]),
  },
};
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def result():
    return node_result(SCRIPT, RUNNER, COMPAT)


def test_button_html_strings_become_templates(result):
    assert result["one"] == ['<button class="jspsych-btn">Yes</button>', '<button class="jspsych-btn">No</button>']
    assert result["each"] == ["<b>A</b>", "<i>B B</i>", "<i>C C</i>"]  # the last template serves the rest
    assert result["kept"] == [{"function": "fancy"}, {"timelineVariable": "html"}]  # resolved by the runner later


def test_click_to_start_puts_a_start_button_before_the_trial(result):
    gate = result["gate"]
    assert gate["is_class"] and gate["info"] == "ensemble-click-to-start"
    assert gate["label"] == "Start" and gate["record_data"] is False
    assert gate["trial"] == {"type": "audio-keyboard-response", "stimulus": "a.wav"}
    assert result["plain"] == {"type": "audio-keyboard-response", "stimulus": "a.wav"}


def test_renamed_v6_parameters(result):
    video, slider, keyboard, nested = result["renamed"]
    assert video == {"type": "jspsych-video-keyboard-response", "stimulus": ["v.mp4"]}
    assert slider == {"type": "html-slider-response", "slider_start": 20, "trial_duration": 1000, "post_trial_gap": 50}
    assert keyboard == {"type": "html-keyboard-response", "start": 3}  # "start" is renamed on sliders only
    assert nested["timeline"][0] == {"type": "image-slider-response", "slider_start": 7, "stimulus_duration": 300}


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("video", "plugin 'video' is not supported: use 'video-keyboard-response'"),
        ("nested", "plugin 'jspsych-single-stim' is not supported: use 'html-keyboard-response'"),
        ("is_html", "parameter 'is_html' is not supported: jsPsych 8 has separate html-* plugins"),
        ("margin", "parameter 'margin_vertical' is not supported: jsPsych 8 dropped it: use button_layout"),
        ("keycodes", "choices key codes (70, 74) is not supported: jsPsych 8 takes key names"),
        ("key_answer", "key_answer key codes (70) is not supported"),
        ("button_html", "button_html is not supported: in jsPsych 8 it is a function (choice, index) => html"),
        ("both", "'start' is not supported: the trial also sets 'slider_start'"),
    ],
)
def test_refused_v6_habits_name_the_jspsych8_way(result, case, says):
    refused = result["refused"][case]
    assert "ok" not in refused
    assert refused["error"].startswith("jsPsych 6 ") and says in refused["error"]
