"""A group_flow module for tests: records every hook call."""

CALLS: list = []
FAIL_ADVANCE = {"on": False}


def on_join(group, participant):
    CALLS.append(("on_join", group.id, participant.id))
    group.context[f"joined_{participant.id}"] = True


def on_advance(group):
    if FAIL_ADVANCE["on"]:
        raise RuntimeError("boom")
    CALLS.append(("on_advance", group.id, group.step))
    return {"color": ["red", "green", "blue"][group.step % 3], "step": group.step}


def on_response(group, participant, answers):
    CALLS.append(("on_response", group.id, participant.id, dict(answers)))
    group.context.patch({"last": participant.id})


def on_all_responded(group):
    CALLS.append(("on_all_responded", group.id, group.step, len(group.responses)))


def on_end(group):
    CALLS.append(("on_end", group.id, group.phase))
