"""A bots module whose expectation fails at group step 1 (the exit-code test)."""

from bots import expect


def colour_trial(screen):
    expect(screen.step != 1, "the colour at step 1 is never shown")
    return None
