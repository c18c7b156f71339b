"""The jsPsych runner module, at the JS level (Node): v6 plugin names map to jsPsych 8 globals."""

import json
from pathlib import Path

import pytest

from tests.runner.node_js import node_result

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "static" / "js" / "jspsych_runner.js"
PLUGINS = ROOT / "thirdparty" / "jsPsych" / "plugins"

SCRIPT = """
global.window = undefined;
require(process.argv[1]);
const E = globalThis.EnsembleJsPsych;
const names = ["html-keyboard-response", "jspsych-html-keyboard-response", "jspsych-html-keyboard-response.js",
               "jsPsychHtmlKeyboardResponse", "survey-multi-choice", "audio-keyboard-response"];
const out = {
  globals: names.map(E.pluginGlobalName),
  urls: names.map(n => E.pluginScriptUrl("/static/jsPsych/plugins/", n)),
  nested: E.pluginNames([{type: "html-keyboard-response"}, {timeline: [{type: "jspsych-image-keyboard-response"}]}]),
  normalized: E.normalizeTimeline(
    [{type: "jspsych-html-keyboard-response", choices: "none"}, {timeline: [{type: "image-keyboard-response"}]}],
    name => ({name})),
};
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def result():
    return node_result(SCRIPT, MODULE)


def test_v6_and_v8_names_map_to_the_same_global(result):
    assert result["globals"][:4] == ["jsPsychHtmlKeyboardResponse"] * 4
    assert result["globals"][4:] == ["jsPsychSurveyMultiChoice", "jsPsychAudioKeyboardResponse"]


def test_plugin_urls_exist_in_the_vendored_jspsych(result):
    for url in result["urls"]:
        assert (PLUGINS / url.rsplit("/", 1)[1]).exists(), url
    for name, global_name in zip(result["urls"], result["globals"], strict=True):
        assert f"var {global_name}=" in (PLUGINS / name.rsplit("/", 1)[1]).read_text()[:200]


def test_nested_timelines_and_v6_key_constants(result):
    assert result["nested"] == ["html-keyboard-response", "jspsych-image-keyboard-response"]
    first, nested = result["normalized"]
    assert first == {"type": {"name": "jsPsychHtmlKeyboardResponse"}, "choices": "NO_KEYS"}
    assert nested["timeline"][0]["type"] == {"name": "jsPsychImageKeyboardResponse"}


def test_every_vendored_plugin_is_reachable_by_its_v6_name():
    """Each plugin-<slug>.js (plugin-survey included) defines the global the runner derives from the
    v6 short name and the v6 file name, and its own info.name is that short name."""
    slugs = sorted(p.stem.removeprefix("plugin-") for p in PLUGINS.glob("plugin-*.js"))
    assert "survey" in slugs
    script = (
        "global.window = undefined; require(process.argv[1]); const E = globalThis.EnsembleJsPsych;"
        "const slugs = JSON.parse(process.argv[2]);"
        "console.log(JSON.stringify(slugs.map(s => [E.pluginGlobalName(s), E.pluginGlobalName('jspsych-' + s),"
        " E.pluginScriptUrl('/p/', s)])));"
    )
    found = node_result(script, MODULE, json.dumps(slugs))
    for slug, (global_name, from_file_name, url) in zip(slugs, found, strict=True):
        source = (PLUGINS / f"plugin-{slug}.js").read_text()
        assert global_name == from_file_name and source.startswith(f"var {global_name}="), slug
        assert url == f"/p/plugin-{slug}.js"
        assert f'name:"{slug}"' in source, slug
