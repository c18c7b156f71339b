"""Stimulus scripts of the ``rtport`` package (see ``jspsych.js`` next to this file)."""

BLUE = "<div class='rt-stim' style='width:90px;height:90px;border-radius:50%;background:#1f5fbf'></div>"
ORANGE = "<div class='rt-stim' style='width:90px;height:90px;border-radius:50%;background:#e8821e'></div>"


def rt_task(run, fixation_ms=250):
    """The reaction-time task written as JSON: timeline variables, ``randomize_order`` and
    an ``on_finish`` from jspsych.js that scores each response (``correct``)."""
    fixation = {
        "type": "html-keyboard-response",
        "stimulus": "<div class='rt-fix' style='font-size:60px'>+</div>",
        "choices": "NO_KEYS",
        "trial_duration": fixation_ms,
        "data": {"task": "fixation"},
    }
    test = {
        "type": "html-keyboard-response",
        "stimulus": {"timelineVariable": "stimulus"},
        "choices": ["f", "j"],
        "data": {
            "task": "response",
            "correct_response": {"timelineVariable": "correct_response"},
            "colour": {"timelineVariable": "colour"},
        },
        "on_finish": {"function": "scoreResponse"},
    }
    return [
        {"type": "html-keyboard-response", "stimulus": "<p id='rt-welcome'>Welcome. Press any key.</p>"},
        {
            "timeline": [fixation, test],
            "timeline_variables": [
                {"stimulus": BLUE, "correct_response": "f", "colour": "blue"},
                {"stimulus": ORANGE, "correct_response": "j", "colour": "orange"},
            ],
            "randomize_order": True,
        },
    ]


def conditions_and_loops(run):
    """A ``conditional_function`` that skips a node, a ``loop_function`` that repeats one
    twice, a dynamic parameter (``stimulus``), ``on_start`` and call-function's ``func``,
    all from jspsych.js."""
    return [
        {
            "timeline": [{"type": "html-keyboard-response", "stimulus": "<p id='skipped'>never shown</p>"}],
            "conditional_function": {"function": "never"},
        },
        {
            "timeline": [
                {
                    "type": "html-button-response",
                    "stimulus": {"function": "loopStimulus"},
                    "choices": ["Next"],
                    "on_start": {"function": "countLoop"},
                }
            ],
            "loop_function": {"function": "loopTwice"},
        },
        {"type": "call-function", "func": {"function": "stamp"}},
    ]


def built(run):
    """The reaction-time task as jsPsych code: the builder ``simple_rt`` of jspsych.js."""
    return {"timeline": "simple_rt", "params": {"repetitions": 1, "fixation_ms": 200}}


def likert(run):
    """A survey-likert page; the form's own questions follow on the same page."""
    scale = ["Not at all", "A little", "Somewhat", "Very"]
    return [
        {
            "type": "survey-likert",
            "questions": [
                {"prompt": "How alert do you feel?", "labels": scale, "name": "alert", "required": True},
            ],
        }
    ]


def unknown_function(run):
    """Names a function jspsych.js does not register: the page must stop."""
    return [{"type": "html-keyboard-response", "stimulus": "<p>x</p>", "on_finish": {"function": "noSuchFunction"}}]


def throws(run):
    """A registered on_finish that throws: the page stops after the first trial."""
    return [
        {"type": "html-keyboard-response", "stimulus": "<p id='first'>x</p>", "on_finish": {"function": "boom"}},
        {"type": "html-keyboard-response", "stimulus": "<p id='second'>y</p>"},
    ]


def missing_media(run):
    """A preload trial whose image does not exist."""
    return [
        {"type": "preload", "images": ["/static/no-such-image.png"]},
        {"type": "image-keyboard-response", "stimulus": "/static/no-such-image.png"},
    ]


def unknown_plugin(run):
    """Names a plugin that is not vendored."""
    return [{"type": "no-such-plugin", "stimulus": "x"}]


def late_error(run):
    """A call-function whose timer throws after the timeline has finished."""
    return [{"type": "call-function", "func": {"function": "throwLater"}}]
