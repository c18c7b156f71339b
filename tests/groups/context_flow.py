"""A group_flow module for tests of what hooks may write into the context: each hook
first writes a good key, then, if ``BAD`` names it, a value the context cannot hold
under key ``bad``. Nothing of a hook refused that way may be kept, the good key neither."""

BAD: dict = {}  # hook name -> the value it writes under "bad"


def _write(group, hook):
    group.context[f"{hook}_ran"] = True
    if hook in BAD:
        group.context["bad"] = BAD[hook]


def on_join(group, participant):
    _write(group, "on_join")


def on_advance(group):
    _write(group, "on_advance")
    return {"step": group.step}


def on_response(group, participant, answers):
    _write(group, "on_response")


def on_all_responded(group):
    _write(group, "on_all_responded")
