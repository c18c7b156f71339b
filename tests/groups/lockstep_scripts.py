"""Stimulus script for lockstep tests: one trial showing the shared colour."""


def color_trial(run):
    color = run.group.shared_params.get("color", "none") if run.group else "none"
    return [{"type": "html-keyboard-response", "stimulus": f"<p>{color}</p>", "choices": ["f", "j"]}]


def broken(run):
    raise RuntimeError("typo in the experiment's script")
