"""The editor: the Django admin, arranged for researchers (mounted at /editor/).

Split by domain like the models: ``experiments`` (experiments with their form
sequence, tickets view, copy action, definition download/upload; studies),
``design`` (forms, questions, data formats), ``runs`` (tickets, subjects,
sessions, responses), ``stimuli``.
"""

from . import design, experiments, runs, stimuli  # noqa: F401  (registers the admins)
