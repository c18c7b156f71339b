"""Demo experiments shipped with Ensemble Live (loaded by ``manage.py seed_demo``).

- ``solo.yaml`` (slug ``demo-solo``): consent, a survey with every widget type,
  a jsPsych keyboard trial looped three times (``demo.solo.trial_timeline``), end.
- ``colors.yaml`` (slug ``demo-colors``): a group experiment in lockstep; the
  group hooks in ``demo.colors`` choose each step's colour from the group's
  warmth ratings so far.
"""
