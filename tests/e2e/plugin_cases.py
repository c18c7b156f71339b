"""One minimal trial per vendored jsPsych plugin, and how to drive it in Chromium.

Each ``Case`` names a plugin (its v6 short name, as PyEnsemble's stimulus scripts write
it), the timeline the stimulus script returns (helper trials such as initialize-camera
first, the plugin's own trial last), the steps that answer it, and the values expected in
its stored data. The data keys checked are those the plugin documents in its
``info.data`` (read in the page) plus jsPsych's own ``trial_type``, ``trial_index`` and
``time_elapsed``; ``absent`` lists documented keys a plugin leaves out in this setup, each
with the reason.

Steps: ``("wait", css)``, ``("key", key)``, ``("click", css)``, ``("button", label)``,
``("fill", css, text)``, ``("drag", css, dx, dy)``, ``("draw", css)``, ``("sleep", ms)``.

``timeline_from_params`` is the stimulus script: it returns the experiment's
``params["timeline"]``, so each case is one solo experiment with its own params.
"""

from __future__ import annotations

from dataclasses import dataclass, field

M = "/plugin-media/"
A, B, TONE, CLIP = M + "a.png", M + "b.png", M + "tone.wav", M + "clip.webm"
MIC = {"type": "initialize-microphone"}
CAMERA = {"type": "initialize-camera"}
USE_MIC = ("button", "Use this microphone")
USE_CAMERA = ("button", "Use this camera")


def timeline_from_params(run, timeline):
    """Stimulus script of every plugin case: the timeline stored in the experiment's params."""
    return timeline


@dataclass(frozen=True)
class Case:
    plugin: str
    timeline: list
    steps: tuple = ()
    expect: dict = field(default_factory=dict)
    absent: tuple = ()
    functions: bool = False  # needs {"function": name} from the experiment package's jspsych.js


# fmt: off
# (the table reads best one case to a few lines)


READY = "<p id='ready'>Ready</p>"  # a prompt to wait for: the trial is on screen and listening
WAIT_READY = ("wait", "#ready")


def _keyed(plugin: str, functions: bool = False, **trial) -> Case:
    """A keyboard trial answered with "a" once its prompt shows (audio and video load first)."""
    return Case(plugin, [{"type": plugin, "choices": ["a"], "prompt": READY, **trial}], (WAIT_READY, ("key", "a")),
                {"response": "a"}, functions=functions)


def _buttons(plugin: str, functions: bool = False, **trial) -> Case:
    """A button trial answered with its second button (response = index 1)."""
    return Case(plugin, [{"type": plugin, "choices": ["Left", "Right"], **trial}], (("button", "Right"),),
                {"response": 1}, functions=functions)


def _slider(plugin: str, functions: bool = False, **trial) -> Case:
    """A slider trial submitted at its starting value (50)."""
    return Case(plugin, [{"type": plugin, **trial}], (("button", "Continue"),), {"response": 50},
                functions=functions)


SURVEY_JSON = {"elements": [{"type": "text", "name": "colour", "title": "Your favourite colour?"}]}

CASES = [
    Case("animation", [{"type": "animation", "stimuli": [A, B], "frame_time": 100}], (), {"response": []}),
    _buttons("audio-button-response", stimulus=TONE),
    _keyed("audio-keyboard-response", stimulus=TONE),
    _slider("audio-slider-response", stimulus=TONE),
    Case("browser-check", [{"type": "browser-check", "vsync_frame_count": 10}], (), {"webaudio": True}),
    Case("call-function", [{"type": "call-function", "func": {"function": "plugin_test_value"}}], (),
         {"value": 42}, functions=True),
    _buttons("canvas-button-response", stimulus={"function": "plugin_test_draw"}, functions=True),
    _keyed("canvas-keyboard-response", stimulus={"function": "plugin_test_draw"}, functions=True),
    _slider("canvas-slider-response", stimulus={"function": "plugin_test_draw"}, functions=True),
    Case("categorize-animation",
         [{"type": "categorize-animation", "stimuli": [A, B], "key_answer": "a", "choices": ["a", "b"],
           "frame_time": 100, "allow_response_before_complete": True, "feedback_duration": 100, "prompt": READY}],
         (WAIT_READY, ("key", "a")), {"response": "a", "correct": True}),
    Case("categorize-html",
         [{"type": "categorize-html", "stimulus": "<p id='stim'>X</p>", "key_answer": "a", "choices": ["a", "b"],
           "feedback_duration": 100}], (("wait", "#stim"), ("key", "a")), {"response": "a", "correct": True}),
    Case("categorize-image",
         [{"type": "categorize-image", "stimulus": A, "key_answer": "a", "choices": ["a", "b"],
           "feedback_duration": 100}], (("wait", "img"), ("key", "a")), {"response": "a", "correct": True}),
    Case("cloze", [{"type": "cloze", "text": "The %cat% sat."}],
         (("fill", "#input0", "cat"), ("click", "#finish_cloze_button")), {"response": ["cat"]}),
    Case("external-html", [{"type": "external-html", "url": M + "page.html", "cont_btn": "ext-go"}],
         (("click", "#ext-go"),), {"url": M + "page.html"}),
    Case("free-sort", [{"type": "free-sort", "stimuli": [A, B], "stim_starts_inside": True, "sort_area_height": 300,
                        "sort_area_width": 300, "stim_height": 30, "stim_width": 30}],  # small: never over the button
         (("drag_into", ".jspsych-free-sort-draggable", "#jspsych-free-sort-arena"), ("button", "Continue"))),
    Case("fullscreen", [{"type": "fullscreen", "delay_after": 0}], (("button", "Continue"),)),
    _buttons("html-button-response", stimulus="<p>Which side?</p>"),
    _keyed("html-keyboard-response", stimulus="<p>Press a</p>"),
    _slider("html-slider-response", stimulus="<p>How much?</p>"),
    Case("html-audio-response",
         [MIC, {"type": "html-audio-response", "stimulus": "<p>Say something</p>", "recording_duration": 500,
                "show_done_button": False, "save_audio_url": True}], (USE_MIC,)),
    Case("html-video-response",
         [CAMERA, {"type": "html-video-response", "stimulus": "<p>Show something</p>", "recording_duration": 500,
                   "show_done_button": False, "save_video_url": True}], (USE_CAMERA,)),
    Case("iat-html", [{"type": "iat-html", "stimulus": "<p id='stim'>joy</p>", "stim_key_association": "left"}],
         (("wait", "#stim"), ("key", "e")), {"response": "e", "correct": True}),
    Case("iat-image", [{"type": "iat-image", "stimulus": A, "stim_key_association": "right"}],
         (("wait", "img"), ("key", "i")), {"response": "i", "correct": True}),
    _buttons("image-button-response", stimulus=A),
    _keyed("image-keyboard-response", stimulus=A),
    _slider("image-slider-response", stimulus=A),
    Case("initialize-camera", [CAMERA], (USE_CAMERA,)),
    Case("initialize-microphone", [MIC], (USE_MIC,)),
    Case("instructions", [{"type": "instructions", "pages": ["<p>one</p>", "<p>two</p>"], "show_clickable_nav": True}],
         (("click", "#jspsych-instructions-next"), ("click", "#jspsych-instructions-next"))),
    Case("maxdiff", [{"type": "maxdiff", "alternatives": ["tea", "coffee", "water"], "labels": ["Least", "Most"]}],
         (("click", "input[data-name='0'][name='left']"), ("click", "input[data-name='1'][name='right']"),
          ("button", "Continue")), {"response": {"left": "tea", "right": "coffee"}}),
    Case("mirror-camera", [CAMERA, {"type": "mirror-camera"}], (USE_CAMERA, ("button", "Continue"))),
    Case("preload", [{"type": "preload", "images": [A], "audio": [TONE], "video": [CLIP]}], (), {"success": True}),
    Case("reconstruction", [{"type": "reconstruction", "stim_function": {"function": "plugin_test_square"},
                             "starting_value": 0.5}], (("key", "h"), ("button", "Continue")), functions=True),
    Case("resize", [{"type": "resize", "item_width": 3, "item_height": 2, "pixels_per_unit": 50}],
         (("click", "#jspsych-resize-btn"),)),
    Case("same-different-html",
         [{"type": "same-different-html", "stimuli": ["<p id='s1'>A</p>", "<p id='s2'>A</p>"], "answer": "same",
           "first_stim_duration": 100, "gap_duration": 100}], (("wait", "#s2"), ("key", "q")),
         {"response": "q", "correct": True}),
    Case("same-different-image",
         [{"type": "same-different-image", "stimuli": [A, A], "answer": "same", "first_stim_duration": 100,
           "gap_duration": 100, "prompt": READY}], (WAIT_READY, ("key", "q")), {"response": "q", "correct": True}),
    Case("serial-reaction-time", [{"type": "serial-reaction-time", "target": [0, 0], "prompt": READY}],
         (WAIT_READY, ("key", "3")),
         {"response": "3", "correct": True}),
    Case("serial-reaction-time-mouse", [{"type": "serial-reaction-time-mouse", "target": [0, 1]}],
         (("click", "#jspsych-serial-reaction-time-stimulus-cell-0-1"),), {"correct": True}),
    Case("sketchpad", [{"type": "sketchpad", "canvas_width": 200, "canvas_height": 150}],
         (("draw", "#sketchpad-canvas"), ("button", "Finished"))),
    Case("survey", [{"type": "survey", "survey_json": SURVEY_JSON}],
         (("fill", ".sd-input", "teal"), ("click", ".sd-navigation__complete-btn")),
         {"response": {"colour": "teal"}}),
    Case("survey-html-form", [{"type": "survey-html-form", "html": "<input name='colour' id='colour'>"}],
         (("fill", "#colour", "teal"), ("click", "#jspsych-survey-html-form-next")), {"response": {"colour": "teal"}}),
    Case("survey-likert", [{"type": "survey-likert", "questions": [
        {"prompt": "Tea?", "labels": ["no", "maybe", "yes"], "name": "tea"}]}],
         (("click", "input[name='Q0'][value='2']"), ("click", "#jspsych-survey-likert-next")),
         {"response": {"tea": 2}}),
    Case("survey-multi-choice", [{"type": "survey-multi-choice", "questions": [
        {"prompt": "Tea?", "options": ["no", "yes"], "name": "tea"}]}],
         (("click", "input[value='yes']"), ("click", "#jspsych-survey-multi-choice-next")),
         {"response": {"tea": "yes"}}),
    Case("survey-multi-select", [{"type": "survey-multi-select", "questions": [
        {"prompt": "Drinks?", "options": ["tea", "coffee"], "name": "drinks"}]}],
         (("click", "input[value='coffee']"), ("click", "#jspsych-survey-multi-select-next")),
         {"response": {"drinks": ["coffee"]}}),
    Case("survey-text", [{"type": "survey-text", "questions": [{"prompt": "Colour?", "name": "colour"}]}],
         (("fill", "#input-0", "teal"), ("click", "#jspsych-survey-text-next")), {"response": {"colour": "teal"}},
         absent=("question_order",)),  # documented, but plugin-survey-text 2.1.1 never stores it
    _buttons("video-button-response", stimulus=[CLIP]),
    _keyed("video-keyboard-response", stimulus=[CLIP]),
    _slider("video-slider-response", stimulus=[CLIP]),
    Case("virtual-chinrest", [{"type": "virtual-chinrest", "blindspot_reps": 1, "resize_units": "cm"}],
         (("click", "#end_resize_phase"), ("wait", "#virtual-chinrest-circle"), ("sleep", 300), ("key", " "),
          ("sleep", 500), ("key", " "), ("click", "#proceed")),
         absent=("item_height_deg",)),  # documented, but plugin-virtual-chinrest 3.1.0 never sets it
    Case("visual-search-circle",
         [{"type": "visual-search-circle", "target": A, "foil": B, "set_size": 3, "target_present": True,
           "fixation_image": B, "fixation_duration": 100}], (("wait", f"img[src='{A}']"), ("key", "j")),
         {"response": "j", "correct": True}),
]
# fmt: on
