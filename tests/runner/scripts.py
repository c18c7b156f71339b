"""Callbacks used by runner tests (resolved as ``tests.runner.scripts.<name>``)."""

TRIAL = {"type": "html-keyboard-response", "stimulus": "<p>Press a key</p>", "choices": ["f", "j"]}


def one_trial(run):
    return [dict(TRIAL)]


def trial_with_stimulus(run):
    from runner.models import Stimulus

    stim = Stimulus.objects.order_by("pk").first()
    return [dict(TRIAL)], stim.pk


def three_then_empty(run, rounds=2):
    """A timeline for the first ``rounds`` visits, then an empty one (ends the loop)."""
    return [dict(TRIAL)] if run.visit <= rounds else []


def always_empty(run):
    return []


def never(run):
    return False


def always(run):
    return True


def answered_yes(run):
    return run.last_answer("likes") == "Yes"


def explode(run):
    raise ZeroDivisionError("boom")


def feedback(run):
    return f"<p class='fb'>You said {run.last_answer('likes')}</p>"


def bad_result(run):
    return {"not": "a timeline"}


def mixed_names(run):
    """Two trials naming plugins the v6 file way and the v8 class way; no questions follow."""
    return [
        {"type": "jspsych-html-keyboard-response", "stimulus": "<p id='t1'>first</p>", "choices": ["a"]},
        {
            "timeline": [
                {"type": "jsPsychHtmlButtonResponse", "stimulus": "<p id='t2'>second</p>", "choices": ["Go on"]}
            ]
        },
    ]


def exits(run):
    """Experiment code calling sys.exit(): must not take the server down."""
    raise SystemExit(3)
