/* Ensemble Live: PyEnsemble / jsPsych 6 habits on jsPsych 8 (window.EnsembleJsPsychCompat).

   Loaded before jspsych_runner.js, which calls translateTimeline(timeline) on the parsed
   timeline before it loads plugins, loadStyles(names, base) for plugins that ship CSS,
   and keepKeys(host) once jsPsych runs. Documented in docs/runner.md, "PyEnsemble's
   jsPsych 6 habits".

   Translated: click_to_start (a start button that resumes the audio context first),
   button_html strings and arrays with %choice% (become (choice, index) => html), renamed
   parameters (sources -> stimulus, start -> slider_start, timing_* -> v8 names).
   Refused with an Error naming the jsPsych 8 way: removed plugins, parameters jsPsych 8
   dropped, numeric key codes, a non-string button_html that is not a function.
*/
(function (global) {
  "use strict";

  var RENAMED = {
    sources: "stimulus",            // video-* plugins (v6)
    start: "slider_start",          // *-slider-response (v6)
    timing_response: "trial_duration",
    timing_stim: "stimulus_duration",
    timing_post_trial: "post_trial_gap",
  };
  var RENAMED_IN = { sources: /^video-/, start: /-slider-response$/ };

  var REFUSED_PARAMETERS = {
    is_html: "jsPsych 8 has separate html-* plugins: use e.g. type 'html-keyboard-response' instead of is_html",
    margin_vertical: "jsPsych 8 dropped it: use button_layout ('grid'/'flex'), grid_rows/grid_columns or CSS",
    margin_horizontal: "jsPsych 8 dropped it: use button_layout ('grid'/'flex'), grid_rows/grid_columns or CSS",
  };

  var REFUSED_PLUGINS = {
    video: "use 'video-keyboard-response', 'video-button-response' or 'video-slider-response'",
    "single-stim": "use 'html-keyboard-response' or 'image-keyboard-response'",
    "single-audio": "use 'audio-keyboard-response'",
    "button-response": "use 'html-button-response' or 'image-button-response'",
    categorize: "use 'categorize-html' or 'categorize-image'",
    text: "use 'html-keyboard-response' (or 'html-button-response')",
    "multi-stim-multi-response": "use one trial per stimulus with 'html-keyboard-response'",
    "vsl-animate-occlusion": "it is not part of jsPsych 8 (jspsych-contrib); write the trial with a vendored plugin",
    "vsl-grid-scene": "it is not part of jsPsych 8 (jspsych-contrib); write the trial with a vendored plugin",
    rdk: "it is not part of jsPsych 8 (jspsych-contrib); write the trial with a vendored plugin",
  };

  var STYLES = { survey: "plugin-survey.css" };  // plugins that ship their own CSS

  function refuse(where, text) {
    throw new Error("jsPsych 6 " + where + " is not supported: " + text);
  }

  function slug(type) {
    var E = global.EnsembleJsPsych;
    return E && E.pluginSlug ? E.pluginSlug(type) : String(type);
  }

  function isReference(value) {  // {"function": name} / {"timelineVariable": name}, resolved later
    return !!value && typeof value === "object" && !Array.isArray(value) &&
      ("function" in value || "timelineVariable" in value);
  }

  /** "<button>%choice%</button>" (or one such string per choice) -> (choice, index) => html. */
  function buttonTemplate(value) {
    if (typeof value === "function" || isReference(value)) return value;
    var templates = Array.isArray(value) ? value : [value];
    if (!templates.length || templates.some(function (t) { return typeof t !== "string"; })) {
      refuse("button_html", "in jsPsych 8 it is a function (choice, index) => html; write a %choice% string " +
        "(or one per choice) here, or register a function in the package's jspsych.js");
    }
    return function (choice, index) {
      var template = templates[Math.min(index, templates.length - 1)];
      return template.split("%choice%").join(choice);
    };
  }

  function checkKeys(node, name) {
    var keys = Array.isArray(node[name]) ? node[name] : [node[name]];
    if (keys.some(function (k) { return typeof k === "number"; })) {
      refuse(name + " key codes (" + keys.join(", ") + ")",
        "jsPsych 8 takes key names: write e.g. [\"f\", \"j\"] or \" \" for the space bar");
    }
  }

  function renameParameters(node, pluginSlug) {
    Object.keys(RENAMED).forEach(function (old) {
      if (!(old in node)) return;
      if (RENAMED_IN[old] && !RENAMED_IN[old].test(pluginSlug)) return;
      if (RENAMED[old] in node) refuse("'" + old + "'", "the trial also sets '" + RENAMED[old] + "'; keep only that");
      node[RENAMED[old]] = node[old];
      delete node[old];
    });
  }

  /** Click-to-start gate: a button that resumes jsPsych's audio context, recording no data. */
  function ClickToStart(jsPsych) { this.jsPsych = jsPsych; }
  ClickToStart.prototype.trial = function (display, trial) {
    var jsPsych = this.jsPsych;
    display.innerHTML = (trial.prompt || "") +
      '<button type="button" class="jspsych-btn" id="ensemble-click-to-start"></button>';
    var button = display.querySelector("#ensemble-click-to-start");
    button.textContent = trial.button_label;
    button.addEventListener("click", function () {
      button.disabled = true;
      var context = jsPsych.pluginAPI.audioContext();  // null when use_webaudio is off
      var ready = context ? context.resume() : Promise.resolve();
      ready.then(function () { jsPsych.finishTrial({}); }, function () { jsPsych.finishTrial({}); });
    });
  };
  function clickToStartInfo() {
    var P = global.jsPsychModule.ParameterType;
    return {
      name: "ensemble-click-to-start", version: "1",
      parameters: { button_label: { type: P.STRING, default: "Click to start" }, prompt: { type: P.HTML_STRING, default: null } },
      data: {},
    };
  }

  function withClickToStart(node) {
    var setting = node.click_to_start;
    delete node.click_to_start;
    if (!setting) return node;
    if (!ClickToStart.info) ClickToStart.info = clickToStartInfo();
    var gate = { type: ClickToStart, record_data: false };
    if (typeof setting === "string") gate.button_label = setting;
    return { timeline: [gate, node] };
  }

  function translateNode(node) {
    if (!node || typeof node !== "object") return node;
    var copy = Object.assign({}, node);
    if (typeof copy.type === "string") {
      var name = slug(copy.type);
      if (REFUSED_PLUGINS[name]) refuse("plugin '" + copy.type + "'", REFUSED_PLUGINS[name]);
      Object.keys(REFUSED_PARAMETERS).forEach(function (p) {
        if (p in copy) refuse("parameter '" + p + "'", REFUSED_PARAMETERS[p]);
      });
      renameParameters(copy, name);
      ["choices", "key_answer"].forEach(function (k) { if (k in copy) checkKeys(copy, k); });
      if ("button_html" in copy) copy.button_html = buttonTemplate(copy.button_html);
    }
    if (Array.isArray(copy.timeline)) copy.timeline = translateTimeline(copy.timeline);
    return withClickToStart(copy);
  }

  /** A copy of the timeline with v6 habits translated; throws an Error on a refused one. */
  function translateTimeline(timeline) {
    return (timeline || []).map(translateNode);
  }

  function loadStyles(names, base) {
    names.map(slug).forEach(function (name) {
      var file = STYLES[name];
      if (!file || document.querySelector('link[data-plugin-style="' + name + '"]')) return;
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = base + file;
      link.setAttribute("data-plugin-style", name);
      document.head.appendChild(link);
    });
  }

  /* jsPsych listens for keys on its display element when it is given one (ours is
     #jspsych-host). A plugin that removes the button just clicked (virtual-chinrest,
     instructions, ...) leaves the focus on <body>, and the next key press would be
     lost: give such a key press to the jsPsych area instead. */
  function keepKeys(host) {
    ["keydown", "keyup"].forEach(function (type) {
      document.addEventListener(type, function (event) {
        if (event.target !== document.body || host.classList.contains("d-none")) return;
        if (!host.querySelector(".jspsych-content")) return;  // jsPsych not running here
        host.focus();
        host.dispatchEvent(new KeyboardEvent(type, event));
      });
    });
  }

  global.EnsembleJsPsychCompat = {
    translateTimeline: translateTimeline,
    buttonTemplate: buttonTemplate,
    loadStyles: loadStyles,
    keepKeys: keepKeys,
    ClickToStart: ClickToStart,
  };
})(typeof window !== "undefined" ? window : globalThis);
