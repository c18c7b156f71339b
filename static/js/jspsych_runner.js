/* Ensemble Live jsPsych runner (jsPsych 8, vendored under /static/jsPsych/).

   Reads the timeline from <script id="jspsych-timeline" type="application/json">
   (Django's json_script), maps plugin names to jsPsych 8 plugin classes, loads the
   plugin scripts it needs, runs the timeline in #jspsych-host and, when it finishes,
   writes jsPsych.data.get().values() as JSON into the hidden input [data-jspsych-data].
   Then it shows the form's questions (#questions) or, if there are none, submits.

   Plugin names accepted in a trial's "type":
     "html-keyboard-response"          (PyEnsemble / jsPsych 6 short name)
     "jspsych-html-keyboard-response"  (jsPsych 6 file name, optionally ending in ".js")
     "jsPsychHtmlKeyboardResponse"     (jsPsych 7+ global / class name)
   All three become window.jsPsychHtmlKeyboardResponse, loaded from plugin-html-keyboard-response.js.
*/
(function (global) {
  "use strict";

  var V6_KEY_CONSTANTS = { none: "NO_KEYS", all: "ALL_KEYS", "jsPsych.NO_KEYS": "NO_KEYS", "jsPsych.ALL_KEYS": "ALL_KEYS" };

  /** "html-keyboard-response" -> "html-keyboard-response"; strips "jspsych-"/"plugin-" and ".js". */
  function pluginSlug(name) {
    var slug = String(name).trim().replace(/\.js$/, "");
    slug = slug.replace(/^jspsych-/, "").replace(/^plugin-/, "");
    if (/^jsPsych[A-Z]/.test(slug)) {  // class/global name -> kebab slug
      slug = slug.slice("jsPsych".length).replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
    }
    return slug;
  }

  /** "html-keyboard-response" (any accepted form) -> "jsPsychHtmlKeyboardResponse". */
  function pluginGlobalName(name) {
    return "jsPsych" + pluginSlug(name).split("-").map(function (part) {
      return part.charAt(0).toUpperCase() + part.slice(1);
    }).join("");
  }

  function pluginScriptUrl(base, name) {
    return base + "plugin-" + pluginSlug(name) + ".js";
  }

  /** Every plugin name used in a timeline (nested timelines included). */
  function pluginNames(timeline, out) {
    out = out || [];
    (timeline || []).forEach(function (node) {
      if (node && typeof node.type === "string" && out.indexOf(node.type) < 0) out.push(node.type);
      if (node && Array.isArray(node.timeline)) pluginNames(node.timeline, out);
    });
    return out;
  }

  /** A copy of the timeline with "type" replaced by plugin classes and v6 key constants mapped. */
  function normalizeTimeline(timeline, lookup) {
    return (timeline || []).map(function (node) {
      var copy = Object.assign({}, node);
      if (typeof copy.type === "string") {
        var cls = lookup(pluginGlobalName(copy.type));
        if (!cls) throw new Error("jsPsych plugin not available: " + copy.type);
        copy.type = cls;
      }
      if (typeof copy.choices === "string" && V6_KEY_CONSTANTS[copy.choices]) copy.choices = V6_KEY_CONSTANTS[copy.choices];
      if (Array.isArray(copy.timeline)) copy.timeline = normalizeTimeline(copy.timeline, lookup);
      return copy;
    });
  }

  function loadScript(url) {
    return new Promise(function (resolve, reject) {
      var tag = document.createElement("script");
      tag.src = url;
      tag.onload = resolve;
      tag.onerror = function () { reject(new Error("could not load " + url)); };
      document.head.appendChild(tag);
    });
  }

  function loadPlugins(names, base) {
    return Promise.all(names.filter(function (n) { return !global[pluginGlobalName(n)]; }).map(function (n) {
      return loadScript(pluginScriptUrl(base, n));
    }));
  }

  function showProblem(host, text) {
    host.innerHTML = "";
    var box = document.createElement("div");
    box.className = "alert alert-danger";
    box.textContent = text;
    host.appendChild(box);
  }

  /* UTF-8 size of a string, as the server measures the posted data. */
  function byteLength(text) {
    if (typeof TextEncoder !== "undefined") return new TextEncoder().encode(text).length;
    return unescape(encodeURIComponent(text)).length;
  }

  function run() {
    var source = document.getElementById("jspsych-timeline");
    var host = document.getElementById("jspsych-host");
    var form = document.querySelector("form[data-run-form]");
    if (!source || !host || !form) return;
    var output = form.querySelector("input[data-jspsych-data]");
    var questions = document.getElementById("questions");
    var hasQuestions = !!(questions && questions.querySelector("[data-question]"));
    if (host.dataset.done === "1") return;  // re-shown after a validation error: task already done
    var timeline;
    var base = host.dataset.pluginBase || "/static/jsPsych/plugins/";
    var compat = global.EnsembleJsPsychCompat;  // jspsych_compat.js: v6 habits, plugin CSS, keys
    new Promise(function (resolve) {
      var parsed = JSON.parse(source.textContent);
      resolve(compat ? compat.translateTimeline(parsed) : parsed);
    }).then(function (translated) {
      timeline = translated;
      if (compat) compat.loadStyles(pluginNames(timeline), base);
      return loadPlugins(pluginNames(timeline), base);
    }).then(function () {
      var jsPsych = global.initJsPsych({
        display_element: host,
        on_finish: function () {
          var json = JSON.stringify(jsPsych.data.get().values());
          var size = byteLength(json);
          var max = parseInt(host.dataset.maxBytes || "0", 10);
          if (max > 0 && size > max) {  // the server would refuse it: say so instead of posting
            showProblem(host, "The task produced more data (" + (size / 1e6).toFixed(1) + " MB) than this " +
              "study can store (" + (max / 1e6).toFixed(1) + " MB). Please contact the research team.");
            return;
          }
          output.value = json;
          host.classList.add("d-none");
          if (hasQuestions) {
            questions.classList.remove("d-none");
            var first = questions.querySelector("input, select, textarea");
            if (first) first.focus();
          } else if (form.requestSubmit) {
            form.requestSubmit(form.querySelector("button[name=_action][value=next]") || undefined);
          } else {
            form.submit();
          }
        },
      });
      if (compat) compat.keepKeys(host);
      return jsPsych.run(normalizeTimeline(timeline, function (name) { return global[name]; }));
    }).catch(function (err) {
      showProblem(host, "This part of the study could not start. Please reload the page. (" + err.message + ")");
    });
  }

  global.EnsembleJsPsych = {
    pluginSlug: pluginSlug,
    pluginGlobalName: pluginGlobalName,
    pluginScriptUrl: pluginScriptUrl,
    pluginNames: pluginNames,
    normalizeTimeline: normalizeTimeline,
    byteLength: byteLength,
    run: run,
  };
  if (typeof document !== "undefined") {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  }
})(typeof window !== "undefined" ? window : globalThis);
