"""The jsPsych dialect module at the JS level (Node): markers at any depth, builders, and
the errors an unknown name raises."""

from pathlib import Path

import pytest

from tests.runner.node_js import node_result

MODULE = Path(__file__).resolve().parents[2] / "static" / "js" / "jspsych_dialect.js"

SCRIPT = """
global.window = undefined;
require(process.argv[1]);
const E = globalThis.EnsembleJsPsych;
const jsPsych = {timelineVariable: name => ({tv: name})};
function score(data) { data.correct = true; }
E.register("score", score);
E.register("never", () => false);
E.registerTimeline("rt", (js, params) => [{type: "html-keyboard-response", stimulus: "n=" + params.n}]);
const timeline = [
  {type: "html-keyboard-response", stimulus: {timelineVariable: "stim"}, on_finish: {function: "score"},
   data: {expected: {timelineVariable: "key"}, deep: [{x: {timelineVariable: "y"}}]}},
  {timeline: [{type: "call-function", func: {function: "never"}}], conditional_function: {function: "never"},
   timeline_variables: [{stim: "a", key: "f"}], randomize_order: true},
  {timeline: "rt", params: {n: 3}},
  {function: "score", extra: 1},
];
const out = E.resolveTimeline(timeline, jsPsych);
const errors = {};
for (const [name, bad] of Object.entries({
  fn: [{on_start: {function: "nope"}, data: {f: {function: "alsoNope"}}}],
  builder: {timeline: "missing"},
})) {
  try { E.resolveTimeline(bad, jsPsych); } catch (e) { errors[name] = {kind: e.kind, message: e.message}; }
}
console.log(JSON.stringify({
  stimulus: out[0].stimulus, onFinishIsScore: out[0].on_finish === score, data: out[0].data,
  conditional: typeof out[1].conditional_function, func: typeof out[1].timeline[0].func,
  variables: out[1].timeline_variables, built: out[2], notAMarker: out[3], whole: E.resolveTimeline(
    {timeline: "rt", params: {n: 1}}, jsPsych), errors,
}));
"""


@pytest.fixture(scope="module")
def result():
    return node_result(SCRIPT, MODULE)


def test_markers_at_any_depth(result):
    assert result["stimulus"] == {"tv": "stim"} and result["onFinishIsScore"]
    assert result["data"] == {"expected": {"tv": "key"}, "deep": [{"x": {"tv": "y"}}]}
    assert result["conditional"] == "function" and result["func"] == "function"
    assert result["variables"] == [{"stim": "a", "key": "f"}]
    assert result["notAMarker"] == {"function": "score", "extra": 1}  # a marker has exactly one key


def test_builders_run_nested_or_whole(result):
    assert result["built"] == {"timeline": [{"type": "html-keyboard-response", "stimulus": "n=3"}]}
    assert result["whole"] == [{"timeline": [{"type": "html-keyboard-response", "stimulus": "n=1"}]}]


def test_unknown_names_are_errors_naming_every_one(result):
    fn = result["errors"]["fn"]
    assert fn["kind"] == "unknown_function"
    assert '"nope" at timeline[0].on_start' in fn["message"] and '"alsoNope" at timeline[0].data.f' in fn["message"]
    assert "registered: never, score" in fn["message"]
    assert (
        result["errors"]["builder"]["kind"] == "unknown_timeline"
        and "missing" in result["errors"]["builder"]["message"]
    )
