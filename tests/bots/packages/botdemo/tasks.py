"""The demos' callbacks, named from this package so that its ``bots.py`` is found."""

from demo.colors import on_advance, on_all_responded, on_end, on_join, on_response  # noqa: F401
from demo.colors import trial_timeline as colour_timeline  # noqa: F401
from demo.solo import trial_timeline as word_timeline  # noqa: F401
