/* jsPsych on the live page (static/js/group_live.js): every step's timeline runs in the
   same document. Plugin scripts (and the experiment's package script) load once per page;
   prepare() loads what a step needs, builds its jsPsych instance and the step's
   `preload` media before the reveal; run() starts it at the reveal; stop() ends it
   when the group moves on. Errors of the running step (its promise, window errors,
   media that do not load) go to hooks.fail(err), once; the page lives on.
   window.EnsembleLiveTask = {prepare}. Uses window.EnsembleJsPsych (jspsych_runner.js). */
(function (global) {
  "use strict";
  var loaded = {};   // script URL -> Promise
  var current = null;

  function loadScript(url) {
    if (!loaded[url]) {
      loaded[url] = new Promise(function (resolve, reject) {
        var tag = document.createElement("script");
        tag.src = url;
        tag.onload = resolve;
        tag.onerror = function () { delete loaded[url]; reject(new Error("could not load " + url)); };
        document.head.appendChild(tag);
      });
    }
    return loaded[url];
  }

  function plugins(names, base) {
    var E = global.EnsembleJsPsych;
    return Promise.all(names.filter(function (n) { return !global[E.pluginGlobalName(n)]; }).map(function (n) {
      return loadScript(E.pluginScriptUrl(base, n)).catch(function () {
        var err = new Error('Unknown jsPsych plugin "' + n + '"');
        err.kind = "unknown_plugin";
        throw err;
      });
    }));
  }

  function preload(urls) {
    return Promise.all((urls || []).map(function (url) {
      return fetch(url, {credentials: "same-origin"}).then(function (r) { return r.blob(); }).catch(function () {
        var err = new Error("could not preload " + url);
        err.kind = "media";
        throw err;
      });
    }));
  }

  function Task(content, host, hooks) {
    this.content = content;
    this.host = host;
    this.hooks = hooks;
    this.over = false;
    this.jsPsych = null;
    this.timeline = null;
  }

  Task.prototype.fail = function (err) {
    if (this.over) return;
    this.over = true;
    this.halt();
    this.hooks.fail(err instanceof Error ? err : new Error(String(err && err.message || err)));
  };

  Task.prototype.halt = function () {
    if (!this.jsPsych) return;
    try { this.jsPsych.pluginAPI.cancelAllKeyboardResponses(); this.jsPsych.pluginAPI.clearAllTimeouts(); }
    catch (e) { /* not started */ }
  };

  Task.prototype.build = function (base) {
    var self = this, E = global.EnsembleJsPsych, compat = global.EnsembleJsPsychCompat;
    var pkg = this.content.package;
    return plugins(pkg ? pkg.plugins || [] : [], base).then(function () {
      if (pkg && pkg.url) return loadScript(pkg.url);
    }).then(function () {
      self.jsPsych = global.initJsPsych({display_element: self.host, on_finish: function () { self.finish(); }});
      var timeline = E.resolveTimeline(JSON.parse(JSON.stringify(self.content.timeline)), self.jsPsych);
      if (compat) { timeline = compat.translateTimeline(timeline); compat.loadStyles(E.pluginNames(timeline), base); }
      return plugins(E.pluginNames(timeline), base).then(function () {
        self.timeline = E.normalizeTimeline(timeline, function (name) { return global[name]; });
      });
    }).then(function () { return preload(self.content.preload); }).then(function () {
      return self.prepareDom();
    }).then(function () { return self; });
  };

  /* jsPsych's own DOM (its content wrapper in the host) is made now, veiled with the
     step, not in the reveal frame: run() then only starts the timeline, whose first
     trial renders in that frame (a trial's response and duration clocks start when it
     renders, so it cannot render earlier). */
  Task.prototype.prepareDom = function () {
    var jsPsych = this.jsPsych;
    if (typeof jsPsych.prepareDom !== "function") return Promise.resolve();
    this.host.innerHTML = "";
    return Promise.resolve(jsPsych.prepareDom()).then(function () {
      jsPsych.prepareDom = function () { return Promise.resolve(); };  // done: run() must not add a second
    });
  };

  Task.prototype.run = function () {
    var self = this;
    current = this;
    this.host.hidden = false;
    global.jsPsych = this.jsPsych;
    global.EnsembleJsPsych.jsPsych = this.jsPsych;
    if (global.EnsembleJsPsychCompat) global.EnsembleJsPsychCompat.keepKeys(this.host);
    try {
      Promise.resolve(this.jsPsych.run(this.timeline)).catch(function (err) { self.fail(err); });
    } catch (err) { self.fail(err); }
  };

  Task.prototype.finish = function () {
    if (this.over) return;
    this.over = true;
    current = null;
    this.hooks.done(JSON.stringify(this.jsPsych.data.get().values()));
  };

  Task.prototype.stop = function () {
    this.over = true;
    this.halt();
    if (current === this) current = null;
    this.host.innerHTML = "";
  };

  function prepare(content, host, hooks) {
    var task = new Task(content, host, hooks);
    return task.build(host.parentNode.closest("[data-plugin-base]").dataset.pluginBase || "/static/jsPsych/plugins/");
  }

  /* Errors outside jsPsych's promise chain (handlers, timers, media of the step). */
  global.addEventListener("error", function (event) {
    if (!current) return;
    var target = event.target;
    if (target && target !== global && target.tagName) {
      if (/^(IMG|AUDIO|VIDEO|SOURCE)$/.test(target.tagName) && current.host.contains(target)) {
        var err = new Error("could not load " + (target.currentSrc || target.src || target.tagName));
        err.kind = "media";
        current.fail(err);
      }
      return;
    }
    current.fail(event.error || new Error(event.message));
  }, true);
  global.addEventListener("unhandledrejection", function (event) { if (current) current.fail(event.reason); });

  global.EnsembleLiveTask = {prepare: prepare};
})(window);
