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

  function classified(kind, err) {
    var out = err instanceof Error ? err : new Error(String(err && err.message || err));
    if (err && err.type === "error" && err.target) {  // an Event: a media file that did not load
      out = new Error("could not load " + (err.target.currentSrc || err.target.src || "a media file"));
      kind = "media";
    }
    if (!out.kind) out.kind = kind;
    return out;
  }

  /* The page stops: nothing is submitted, the participant sees the failure page with
     "Try again", and the server hears of it once (runner/failures.py). */
  function failure(page) {
    return function fail(err) {
      if (page.failed || page.done) return;  // after the timeline: the questions are not the task's
      err = classified("exception", err);
      page.failed = true;
      if (page.jsPsych) {
        try { page.jsPsych.pluginAPI.cancelAllKeyboardResponses(); page.jsPsych.pluginAPI.clearAllTimeouts(); }
        catch (e) { /* half-started: nothing to cancel */ }
      }
      page.host.innerHTML = "";
      page.host.classList.add("d-none");
      page.form.remove();  // nothing of this page can be submitted now
      var panel = document.querySelector("[data-timeline-error]");
      if (panel) {
        var detail = panel.querySelector("[data-timeline-error-message]");
        if (detail) detail.textContent = err.message;
        panel.classList.remove("d-none");
        var retry = panel.querySelector("[data-timeline-retry]");
        if (retry) retry.addEventListener("click", function () { global.location.reload(); });
      } else {
        page.host.classList.remove("d-none");
        showProblem(page.host, "This part of the study could not start. Please reload the page. (" + err.message + ")");
      }
      if (page.host.dataset.failureUrl && global.fetch) {
        global.fetch(page.host.dataset.failureUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": page.csrf },
          body: JSON.stringify({ order: page.ident.order, visit: page.ident.visit, nonce: page.ident.nonce,
                                 kind: err.kind, message: String(err.message).slice(0, 500) }),
        }).catch(function () { /* offline: the participant still sees the page */ });
      }
    };
  }

  /* Errors outside jsPsych's promise chain: event handlers, timers, media elements. */
  function watch(page, fail) {
    global.addEventListener("error", function (event) {
      var el = event.target;
      if (el && el !== global && el.tagName) {  // a resource of an element (scripts report their own)
        if (/^(IMG|AUDIO|VIDEO|SOURCE)$/.test(el.tagName) && page.host.contains(el)) {
          fail(classified("media", new Error("could not load " + (el.currentSrc || el.src || el.tagName))));
        }
        return;
      }
      fail(classified("exception", event.error || new Error(event.message)));
    }, true);
    global.addEventListener("unhandledrejection", function (event) { fail(classified("exception", event.reason)); });
  }

  /* A preload trial that cannot load a file reports it (unless it is told to go on). */
  function preloadReports(timeline, fail) {
    (timeline || []).forEach(function (node) {
      if (!node || typeof node !== "object") return;
      if (Array.isArray(node.timeline)) preloadReports(node.timeline, fail);
      var name = node.type && node.type.info && node.type.info.name;  // after normalizeTimeline: the class
      if (name === "preload" && !node.continue_after_error) {
        var own = node.on_error;
        node.on_error = function (file) {
          if (typeof own === "function") own(file);
          fail(classified("media", new Error("could not preload " + (file && file.source || file))));
        };
      }
    });
  }

  /* loadPlugins, with an error naming the plugin that is not vendored. */
  function requirePlugins(names, base) {
    return Promise.all(names.map(function (n) {
      return loadPlugins([n], base).catch(function () {
        throw classified("unknown_plugin", new Error('Unknown jsPsych plugin "' + n + '" (no ' +
          pluginScriptUrl(base, n) + " among the vendored plugins)"));
      });
    }));
  }

  function tagged(kind) {
    return function (err) { throw classified(kind, err); };
  }

  function finisher(page, hasQuestions) {
    var host = page.host, form = page.form, questions = document.getElementById("questions");
    return function () {
      if (page.failed) return;
      page.done = true;
      var json = JSON.stringify(page.jsPsych.data.get().values());
      var size = byteLength(json);
      var max = parseInt(host.dataset.maxBytes || "0", 10);
      if (max > 0 && size > max) {  // the server would refuse it: say so instead of posting
        showProblem(host, "The task produced more data (" + (size / 1e6).toFixed(1) + " MB) than this " +
          "study can store (" + (max / 1e6).toFixed(1) + " MB). Please contact the research team.");
        return;
      }
      form.querySelector("input[data-jspsych-data]").value = json;
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
    };
  }

  function field(form, name) {
    var input = form.querySelector('input[name="' + name + '"]');
    return input ? input.value : "";
  }

  function run() {
    var source = document.getElementById("jspsych-timeline");
    var host = document.getElementById("jspsych-host");
    var form = document.querySelector("form[data-run-form]");
    if (!source || !host || !form) return;
    var questions = document.getElementById("questions");
    var hasQuestions = !!(questions && questions.querySelector("[data-question]"));
    if (host.dataset.done === "1") return;  // re-shown after a validation error: task already done
    var page = { host: host, form: form, failed: false, done: false, jsPsych: null,
                 csrf: field(form, "csrfmiddlewaretoken"),
                 ident: { order: parseInt(field(form, "_order"), 10), visit: parseInt(field(form, "_visit"), 10),
                          nonce: field(form, "_nonce") } };
    var fail = failure(page);
    watch(page, fail);
    var base = host.dataset.pluginBase || "/static/jsPsych/plugins/";
    var own = (host.dataset.packagePlugins || "").split(",").filter(Boolean);
    var E = global.EnsembleJsPsych;
    var compat = global.EnsembleJsPsychCompat;
    requirePlugins(own, base).then(function () {
      if (host.dataset.packageScript) return loadScript(host.dataset.packageScript).catch(tagged("script"));
    }).then(function () {
      page.jsPsych = global.initJsPsych({ display_element: host, on_finish: finisher(page, hasQuestions) });
      // The running instance under the name jsPsych's own examples give it (replacing the
      // library's v6 "migration" placeholder), so ported functions work unchanged.
      global.jsPsych = page.jsPsych;
      E.jsPsych = page.jsPsych;
      var timeline = E.resolveTimeline(JSON.parse(source.textContent), page.jsPsych);
      if (compat) {  // jspsych_compat.js: v6 habits, plugin CSS, keys
        timeline = compat.translateTimeline(timeline);
        compat.loadStyles(pluginNames(timeline), base);
        compat.keepKeys(host);
      }
      return requirePlugins(pluginNames(timeline), base).then(function () {
        var ready;
        try { ready = normalizeTimeline(timeline, function (name) { return global[name]; }); }
        catch (err) { throw classified("unknown_plugin", err); }
        preloadReports(ready, fail);
        if (page.failed) return;
        return page.jsPsych.run(ready);
      });
    }).catch(fail);
  }

  global.EnsembleJsPsych = Object.assign(global.EnsembleJsPsych || {}, {
    pluginSlug: pluginSlug,
    pluginGlobalName: pluginGlobalName,
    pluginScriptUrl: pluginScriptUrl,
    pluginNames: pluginNames,
    normalizeTimeline: normalizeTimeline,
    byteLength: byteLength,
    run: run,
  });
  if (typeof document !== "undefined") {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  }
})(typeof window !== "undefined" ? window : globalThis);
