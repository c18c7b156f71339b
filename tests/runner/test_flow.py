"""Pure loop arithmetic (no database)."""

from runner.flow import Step, loop_containing, next_order, order_after_loop

STEPS = [Step(1), Step(2), Step(3, repeat=3, goto=2), Step(4)]


def test_linear_steps():
    assert next_order(STEPS, 1, {}) == (2, {})


def test_loop_runs_repeat_times():
    loops = {}
    seen = []
    order = 3
    for _ in range(3):
        order, loops = next_order(STEPS, 3, loops)
        seen.append(order)
    assert seen == [2, 2, 4] and loops == {"3": 3}


def test_leave_loop_and_containing():
    assert next_order(STEPS, 3, {}, leave_loop=True) == (4, {"3": 1})
    assert loop_containing(STEPS, 2).order == 3 and loop_containing(STEPS, 1) is None
    assert order_after_loop(STEPS, 2) == 4 and order_after_loop(STEPS, 1) == 2


def test_single_form_loop_and_zero_repeat():
    steps = [Step(1, repeat=2, goto=1), Step(2, repeat=0, goto=2)]
    assert next_order(steps, 1, {}) == (1, {"1": 1})
    assert next_order(steps, 1, {"1": 1}) == (2, {"1": 2})
    assert next_order(steps, 2, {}) == (3, {"2": 1})
