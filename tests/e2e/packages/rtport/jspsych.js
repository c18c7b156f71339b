/* rtport: functions and timeline builders for the stimulus scripts in timelines.py.
   Loaded before the timeline runs on every page whose stimulus script comes from this
   package. `jsPsych` is the running instance (also EnsembleJsPsych.jsPsych). */
(function () {
  "use strict";
  var E = window.EnsembleJsPsych;

  // on_finish of a response trial: was the key the expected one?
  E.register("scoreResponse", function (data) {
    data.correct = jsPsych.pluginAPI.compareKeys(data.response, data.correct_response);
  });

  E.register("never", function () { return false; });
  E.register("boom", function () { throw new Error("boom from the package"); });
  E.register("throwLater", function () { setTimeout(function () { throw new Error("late"); }, 300); return 1; });

  var loops = 0;
  E.register("countLoop", function () { loops += 1; });
  E.register("loopTwice", function () { return loops < 2; });
  // A dynamic parameter: jsPsych calls it when the trial starts (before on_start).
  E.register("loopStimulus", function () { return "<p id='looped-" + loops + "'>Round " + (loops + 1) + "</p>"; });
  E.register("stamp", function () { return "loops:" + loops; });

  /* The same reaction-time task, ported as jsPsych code: the body is the timeline part of
     an ordinary jsPsych experiment file, with initJsPsych/jsPsych.run left to the page. */
  E.registerTimeline("simple_rt", function (jsPsych, params) {
    var circle = function (colour) {
      return "<div class='rt-stim' style='width:90px;height:90px;border-radius:50%;background:" + colour + "'></div>";
    };
    var fixation = {
      type: jsPsychHtmlKeyboardResponse,
      stimulus: "<div style='font-size:60px'>+</div>",
      choices: "NO_KEYS",
      trial_duration: params.fixation_ms,
      data: { task: "fixation" },
    };
    var test = {
      type: jsPsychHtmlKeyboardResponse,
      stimulus: jsPsych.timelineVariable("stimulus"),
      choices: ["f", "j"],
      data: { task: "response", correct_response: jsPsych.timelineVariable("correct_response") },
      on_finish: function (data) {
        data.correct = jsPsych.pluginAPI.compareKeys(data.response, data.correct_response);
      },
    };
    var debrief = {
      type: jsPsychHtmlButtonResponse,
      choices: ["Done"],
      stimulus: function () {
        var trials = jsPsych.data.get().filter({ task: "response" });
        var rt = Math.round(trials.filter({ correct: true }).select("rt").mean());
        return "<p id='rt-debrief'>Mean response time: " + rt + " ms</p>";
      },
    };
    return [
      { type: jsPsychHtmlKeyboardResponse, stimulus: "<p id='rt-welcome'>Welcome. Press any key.</p>" },
      {
        timeline: [fixation, test],
        timeline_variables: [
          { stimulus: circle("#1f5fbf"), correct_response: "f" },
          { stimulus: circle("#e8821e"), correct_response: "j" },
        ],
        repetitions: params.repetitions,
        randomize_order: true,
      },
      debrief,
    ];
  });
})();
