"""Stimulus script for lockstep tests: one trial showing the shared colour."""


def color_trial(run):
    color = run.group.shared_params.get("color", "none") if run.group else "none"
    return [{"type": "html-keyboard-response", "stimulus": f"<p>{color}</p>", "choices": ["f", "j"]}]


def broken(run):
    raise RuntimeError("typo in the experiment's script")


def live_button_trial(run):
    """The live page's jsPsych test: a button per step with a preload list beside the
    timeline; an unknown plugin at step 2 (a jsPsych error on one step)."""
    step = run.group.step if run.group else 0
    plugin = "no-such-plugin" if step == 2 else "html-button-response"
    trial = {"type": plugin, "stimulus": f"<p data-live-stimulus>step {step}</p>", "choices": [f"Go {step}"]}
    return {"timeline": [trial], "preload": ["/static/img/favicon.svg"]}
