/* Ensemble Live jsPsych dialect (docs/runner.md, "jsPsych dialect"; SPEC section 4).

   An experiment package's jspsych.js (served next to the page, loaded before the timeline
   runs) registers what a JSON timeline cannot hold:

     EnsembleJsPsych.register("name", function (...) { ... });            a function
     EnsembleJsPsych.registerTimeline("name", function (jsPsych, params) { return [...]; });

   In a timeline from a stimulus script, at any depth:
     {"function": "name"}          -> the registered function
     {"timelineVariable": "name"}  -> jsPsych.timelineVariable("name")
   and a node {"timeline": "name", "params": {...}} (or the whole timeline) runs a
   registered builder. Anything unknown throws a DialectError whose `kind`
   ("unknown_function" | "unknown_timeline") the runner reports to the server.
*/
(function (global) {
  "use strict";

  var functions = Object.create(null);
  var builders = Object.create(null);

  function DialectError(kind, message) {
    var err = new Error(message);
    err.name = "DialectError";
    err.kind = kind;
    return err;
  }

  function checkName(name, what) {
    if (typeof name !== "string" || !name) throw new TypeError(what + " needs a name (a non-empty string)");
  }

  function register(name, fn) {
    checkName(name, "EnsembleJsPsych.register");
    if (typeof fn !== "function") throw new TypeError('EnsembleJsPsych.register("' + name + '", ...) needs a function');
    functions[name] = fn;
  }

  function registerTimeline(name, builder) {
    checkName(name, "EnsembleJsPsych.registerTimeline");
    if (typeof builder !== "function") {
      throw new TypeError('EnsembleJsPsych.registerTimeline("' + name + '", ...) needs a function (jsPsych, params)');
    }
    builders[name] = builder;
  }

  function isPlain(value) {
    if (value === null || typeof value !== "object") return false;
    var proto = Object.getPrototypeOf(value);
    return proto === Object.prototype || proto === null;
  }

  function only(value, key) {
    var keys = Object.keys(value);
    return keys.length === 1 && keys[0] === key && typeof value[key] === "string";
  }

  function isBuilderNode(value) {
    if (!isPlain(value) || typeof value.timeline !== "string") return false;
    return Object.keys(value).every(function (k) { return k === "timeline" || k === "params"; });
  }

  function known(table) {
    var names = Object.keys(table);
    return names.length ? names.sort().join(", ") : "none";
  }

  /* A copy of `value` with markers replaced; unknown names are collected in `missing`. */
  function resolveValue(value, jsPsych, path, missing) {
    if (Array.isArray(value)) {
      return value.map(function (item, i) { return resolveValue(item, jsPsych, path + "[" + i + "]", missing); });
    }
    if (!isPlain(value)) return value;
    if (only(value, "function")) {
      if (!(value["function"] in functions)) missing.push('"' + value["function"] + '" at ' + path);
      return functions[value["function"]];
    }
    if (only(value, "timelineVariable")) return jsPsych.timelineVariable(value.timelineVariable);
    if (isBuilderNode(value)) return build(value, jsPsych, path);
    var out = {};
    Object.keys(value).forEach(function (key) { out[key] = resolveValue(value[key], jsPsych, path + "." + key, missing); });
    return out;
  }

  function build(node, jsPsych, path) {
    var builder = builders[node.timeline];
    if (!builder) {
      throw DialectError("unknown_timeline", 'Unknown timeline builder "' + node.timeline + '" at ' + path +
        " (registered: " + known(builders) + "). Register it in the package's jspsych.js with " +
        'EnsembleJsPsych.registerTimeline("' + node.timeline + '", function (jsPsych, params) {...}).');
    }
    var built = builder(jsPsych, Object.assign({}, node.params || {}));
    if (Array.isArray(built)) return { timeline: built };
    if (built && typeof built === "object") return built;
    throw DialectError("unknown_timeline", 'Timeline builder "' + node.timeline + '" returned ' + typeof built +
      ", not a timeline (a list of trials or a timeline node)");
  }

  /* The timeline a stimulus script returned (JSON), ready for jsPsych.run: a list of nodes. */
  function resolveTimeline(timeline, jsPsych) {
    var missing = [];
    var out = resolveValue(timeline, jsPsych, "timeline", missing);
    if (missing.length) {
      throw DialectError("unknown_function", "Unknown function " + missing.join(", ") + " (registered: " +
        known(functions) + "). Register it in the package's jspsych.js with " +
        'EnsembleJsPsych.register("name", function (...) {...}).');
    }
    return Array.isArray(out) ? out : [out];
  }

  var api = global.EnsembleJsPsych = global.EnsembleJsPsych || {};
  api.register = register;
  api.registerTimeline = registerTimeline;
  api.resolveTimeline = resolveTimeline;
  api.DialectError = DialectError;
  api.registered = function () { return { functions: Object.keys(functions), timelines: Object.keys(builders) }; };
})(typeof window !== "undefined" ? window : globalThis);
