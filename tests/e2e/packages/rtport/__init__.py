"""A jsPsych reaction-time task ported to Ensemble Live (docs/runner.md, "Porting a jsPsych
experiment"), and small timelines the browser tests of the jsPsych dialect drive.

Put this folder's parent on ``EXPERIMENTS_PATH``; callbacks are ``rtport.timelines.<name>``
and the package's ``jspsych.js`` registers the functions and builders they name.
"""
