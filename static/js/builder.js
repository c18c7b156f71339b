/* Ensemble Live survey builder: edits an experiment's definition (the mapping a definition
   file holds) and saves it through the server's loader (runner/builder.py), which checks it
   exactly as `manage.py load_experiment` does. Keys the builder does not show (params,
   data_policy, group_flow, ...) are kept as they are. The preview pane shows the selected
   page as the participant will see it, drawn by the server from the unsaved definition. */
(function () {
  "use strict";
  var root = document.getElementById("builder");
  if (!root) return;
  var def = JSON.parse(document.getElementById("builder-definition").textContent);
  var HANDLERS = JSON.parse(document.getElementById("builder-handlers").textContent);
  var WIDGETS = JSON.parse(document.getElementById("builder-widgets").textContent);
  var CHOICE = ["radiogroup", "checkbox", "menu"], RANGE = ["numeric", "slider"];
  var csrf = root.querySelector("input[name=csrfmiddlewaretoken]").value;
  var formsBox = root.querySelector("[data-forms]");
  var previewSelect = root.querySelector("[data-preview-select]");
  var frame = root.querySelector("[data-preview]");
  var status = root.querySelector("[data-save-status]");
  var selected = 0, dirty = false, previewTimer = null, dragged = null;
  def.forms = def.forms || [];

  // ---- small DOM helpers ----------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }
  var uid = 0;
  function field(label, input, cls) {
    var id = "bf-" + (++uid);
    input.id = id;
    return el("div", {class: cls || "col-md-6"}, [el("label", {class: "form-label small mb-0", for: id, text: label}), input]);
  }
  function setOrDelete(obj, key, value) {
    if (value === "" || value === null || value === undefined || value === false) delete obj[key];
    else obj[key] = value;
  }
  function textInput(obj, key, opts) {
    opts = opts || {};
    var input = el(opts.rows ? "textarea" : "input", {class: "form-control form-control-sm"});
    if (opts.rows) input.rows = opts.rows;
    if (opts.placeholder) input.placeholder = opts.placeholder;
    if (opts.number) { input.type = "number"; input.step = "any"; }
    input.value = obj[key] === undefined || obj[key] === null ? "" : obj[key];
    input.addEventListener("input", function () {
      var v = input.value;
      if (opts.number) v = v.trim() === "" ? "" : Number(v);
      if (opts.keep) obj[key] = v; else setOrDelete(obj, key, v);
      changed();
    });
    // Names and loop counts appear elsewhere (menus): redraw once the typing is done, so
    // the field keeps its focus while typing.
    if (opts.restructure) input.addEventListener("change", function () { render(); });
    return input;
  }
  function select(options, value, onChange) {
    var s = el("select", {class: "form-select form-select-sm"});
    options.forEach(function (o) {
      var opt = el("option", {value: o[0], text: o[1]});
      if (String(o[0]) === String(value)) opt.selected = true;
      s.appendChild(opt);
    });
    s.addEventListener("change", function () { onChange(s.value); });
    return s;
  }
  function button(text, title, onClick, cls) {
    var b = el("button", {type: "button", class: cls || "btn btn-sm btn-outline-secondary", title: title, "aria-label": title, text: text});
    b.addEventListener("click", onClick);
    return b;
  }
  function move(list, from, to) {
    if (to < 0 || to >= list.length || from === to) return;
    list.splice(to, 0, list.splice(from, 1)[0]);
  }

  // ---- names ----------------------------------------------------------------------------
  function allKeys() {
    var keys = {};
    def.forms.forEach(function (f) { (f.questions || []).forEach(function (q) { keys[q.key] = true; }); });
    return keys;
  }
  function fresh(prefix, taken) {
    for (var i = 1; ; i++) if (!taken[prefix + i]) return prefix + i;
  }
  function formNames() {
    var names = {};
    def.forms.forEach(function (f) { names[f.name] = true; });
    return names;
  }
  function answerType(q) {  // mirrors runner.definitions.schema.data_format_for
    if (CHOICE.indexOf(q.type) >= 0) return "one of the choices";
    if (q.type === "text") return "short text";
    if (q.type === "textarea") return "long text";
    var r = q.range || {};
    var whole = ["min", "max", "step"].every(function (k) { return r[k] === undefined || Number.isInteger(r[k]); });
    return whole && Object.keys(r).length ? "a whole number" : "a number";
  }

  // ---- questions ------------------------------------------------------------------------
  function setType(q, type) {
    q.type = type;
    if (CHOICE.indexOf(type) >= 0) { q.choices = q.choices || []; delete q.range; }
    else if (RANGE.indexOf(type) >= 0) { q.range = q.range || (type === "slider" ? {min: 1, max: 7, step: 1} : {}); delete q.choices; }
    else { delete q.choices; delete q.range; }
  }
  function choicesBox(q) {
    var area = el("textarea", {class: "form-control form-control-sm", rows: "3", placeholder: "One choice per line"});
    area.value = (q.choices || []).join("\n");
    area.setAttribute("data-choices", "");
    area.addEventListener("input", function () {
      q.choices = area.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
      changed();
    });
    return field("Choices, one per line", area, "col-12");
  }
  function rangeBox(q) {
    var range = q.range || {};  // emptied: no range at all (the loader says what a slider needs)
    var row = el("div", {class: "row g-2 col-12"});
    ["min", "max", "step"].forEach(function (k) {
      var input = el("input", {class: "form-control form-control-sm", type: "number", step: "any", "data-range": k,
                               placeholder: k === "step" ? "any" : ""});
      input.value = range[k] === undefined ? "" : range[k];
      input.addEventListener("input", function () {
        setOrDelete(range, k, input.value.trim() === "" ? "" : Number(input.value));
        if (Object.keys(range).length) q.range = range; else delete q.range;
        changed();
      });
      row.appendChild(field(k, input, "col-4"));
    });
    return row;
  }
  function questionRow(form, q, qi) {
    var box = el("div", {class: "builder-question", "data-question": q.key || ""});
    var head = el("div", {class: "d-flex gap-2 align-items-center"});
    var handle = el("span", {class: "drag-handle", title: "Drag to reorder", text: "⠿"});
    head.appendChild(handle);
    var key = textInput(q, "key", {keep: true, placeholder: "key"});
    key.classList.add("w-auto");
    key.setAttribute("data-key", "");
    key.size = 12;
    head.appendChild(key);
    var type = select(WIDGETS, q.type, function (v) { setType(q, v); changed(true); });
    type.classList.add("w-auto");
    type.setAttribute("data-type", "");
    head.appendChild(type);
    var req = el("input", {type: "checkbox", class: "form-check-input"});
    req.checked = !!q.required;
    req.addEventListener("change", function () { q.required = req.checked; changed(); });
    head.appendChild(el("label", {class: "form-check-label small text-nowrap"}, [req, document.createTextNode(" required")]));
    var tools = el("div", {class: "ms-auto d-flex gap-1"});
    tools.appendChild(button("↑", "Move question up", function () { move(form.questions, qi, qi - 1); changed(true); }));
    tools.appendChild(button("↓", "Move question down", function () { move(form.questions, qi, qi + 1); changed(true); }));
    tools.appendChild(button("✕", "Remove question " + (q.key || ""), function () { form.questions.splice(qi, 1); changed(true); }, "btn btn-sm btn-outline-danger"));
    head.appendChild(tools);
    box.appendChild(head);
    var body = el("div", {class: "row g-2 mt-1"});
    var text = textInput(q, "text", {keep: true, placeholder: "The question as participants read it"});
    text.setAttribute("data-text", "");
    body.appendChild(field("Question", text, "col-12"));
    if (CHOICE.indexOf(q.type) >= 0) body.appendChild(choicesBox(q));
    if (RANGE.indexOf(q.type) >= 0) body.appendChild(rangeBox(q));
    body.appendChild(el("div", {class: "col-12 small text-secondary", text: "Stored as " + answerType(q) + "."}));
    box.appendChild(body);
    draggable(box, handle, form.questions, qi);
    return box;
  }

  // ---- pages (forms) ----------------------------------------------------------------------
  function loopBox(form, fi) {
    var row = el("div", {class: "row g-2"});
    var repeat = textInput(form, "repeat", {number: true, placeholder: "no loop", restructure: true});
    row.appendChild(field("Repeat (loop ends here)", repeat, "col-md-4"));
    var targets = [["", "—"]].concat(def.forms.slice(0, fi + 1).map(function (f) { return [f.name, f.name]; }));
    row.appendChild(field("Loop back to", select(targets, form.goto || "", function (v) { setOrDelete(form, "goto", v); changed(); }), "col-md-4"));
    var brk = el("input", {type: "checkbox", class: "form-check-input"});
    brk.checked = !!form.break_loop_button;
    brk.addEventListener("change", function () { setOrDelete(form, "break_loop_button", brk.checked); changed(); });
    row.appendChild(el("div", {class: "col-md-4 pt-4"}, [el("label", {class: "form-check-label small"}, [brk, document.createTextNode(" “Leave the loop” button")])]));
    row.appendChild(field("Stimulus script (jsPsych timeline)", textInput(form, "stimulus_script", {placeholder: "package.module.function"})));
    row.appendChild(field("Condition script (skip when false)", textInput(form, "condition_script", {placeholder: "package.module.function"})));
    row.appendChild(field("Next button", textInput(form, "continue_button_text", {placeholder: "Next"})));
    row.appendChild(field("Footer (HTML)", textInput(form, "footer", {})));
    return el("details", {class: "mt-2 small"}, [el("summary", {text: "Loop, scripts and buttons"}), row]);
  }
  function formCard(form, fi) {
    var card = el("div", {class: "card shadow-sm mb-2 builder-form" + (fi === selected ? " selected" : ""), "data-form": form.name});
    var body = el("div", {class: "card-body"});
    var head = el("div", {class: "d-flex flex-wrap gap-2 align-items-center"});
    var handle = el("span", {class: "drag-handle", title: "Drag to reorder", text: "⠿"});
    head.appendChild(handle);
    head.appendChild(el("span", {class: "badge text-bg-light border", text: String(fi + 1)}));
    var name = textInput(form, "name", {keep: true, restructure: true, placeholder: "page name"});
    name.classList.add("w-auto");
    name.setAttribute("data-form-name", "");
    head.appendChild(name);
    var handler = select(HANDLERS, form.handler || "form_generic", function (v) { form.handler = v; changed(true); });
    handler.classList.add("w-auto");
    handler.setAttribute("data-handler", "");
    head.appendChild(handler);
    var tools = el("div", {class: "ms-auto d-flex gap-1"});
    tools.appendChild(button("↑", "Move page up", function () { move(def.forms, fi, fi - 1); selected = Math.max(fi - 1, 0); changed(true); }));
    tools.appendChild(button("↓", "Move page down", function () { move(def.forms, fi, fi + 1); selected = Math.min(fi + 1, def.forms.length - 1); changed(true); }));
    tools.appendChild(button("✕", "Remove page " + form.name, function () {
      if (!window.confirm("Remove the page “" + form.name + "” and its questions?")) return;
      def.forms.splice(fi, 1); selected = Math.min(selected, def.forms.length - 1); changed(true);
    }, "btn btn-sm btn-outline-danger"));
    head.appendChild(tools);
    body.appendChild(head);
    var texts = el("div", {class: "row g-2 mt-1"});
    texts.appendChild(field("Title", textInput(form, "title", {})));
    texts.appendChild(field("Text above the questions (HTML)", textInput(form, "header", {rows: 2}), "col-md-6"));
    body.appendChild(texts);
    if (form.handler !== "form_end_session") {
      form.questions = form.questions || [];
      var list = el("div", {"data-questions": ""});
      form.questions.forEach(function (q, qi) { list.appendChild(questionRow(form, q, qi)); });
      body.appendChild(list);
      body.appendChild(button("Add a question", "Add a question to " + form.name, function () {
        form.questions = form.questions || [];
        form.questions.push({key: fresh("q", allKeys()), text: "", type: "radiogroup", choices: [], required: true});
        changed(true);
      }, "btn btn-sm btn-outline-primary mt-2"));
      if (!form.questions.length) delete form.questions;
    }
    body.appendChild(loopBox(form, fi));
    card.appendChild(body);
    card.addEventListener("focusin", function () { choose(fi); });
    card.addEventListener("click", function () { choose(fi); });
    draggable(card, handle, def.forms, fi);
    return card;
  }
  function choose(fi) {
    if (selected === fi) return;
    selected = fi;
    formsBox.querySelectorAll(".builder-form").forEach(function (c, i) { c.classList.toggle("selected", i === fi); });
    previewSelect.value = String(fi);
    schedulePreview();
  }

  // ---- drag and drop (forms, and questions within a form) ----------------------------------
  function draggable(item, handle, list, index) {
    handle.addEventListener("mousedown", function () { item.draggable = true; });
    item.addEventListener("dragstart", function (e) {
      e.stopPropagation();
      dragged = {list: list, index: index};
      item.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", String(index));
    });
    item.addEventListener("dragend", function () { item.draggable = false; item.classList.remove("dragging"); });
    item.addEventListener("dragover", function (e) {
      if (dragged && dragged.list === list) { e.preventDefault(); e.stopPropagation(); }
    });
    item.addEventListener("drop", function (e) {
      if (!dragged || dragged.list !== list) return;
      e.preventDefault();
      e.stopPropagation();
      if (list === def.forms) selected = index;
      move(list, dragged.index, index);
      dragged = null;
      changed(true);
    });
  }

  // ---- render, preview, save ------------------------------------------------------------
  function render() {
    formsBox.textContent = "";
    def.forms.forEach(function (f, fi) { formsBox.appendChild(formCard(f, fi)); });
    previewSelect.textContent = "";
    def.forms.forEach(function (f, fi) { previewSelect.appendChild(el("option", {value: String(fi), text: (fi + 1) + ". " + f.name})); });
    previewSelect.value = String(selected);
    schedulePreview();
  }
  function changed(restructure) {
    dirty = true;
    status.textContent = "Unsaved changes";
    if (restructure) render(); else schedulePreview();
  }
  function post(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}});
  }
  function schedulePreview() {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(function () {
      var form = def.forms[selected];
      if (!form) { frame.srcdoc = ""; return; }
      post(root.dataset.previewUrl, {form: form})
        .then(function (r) { return r.json(); })
        .then(function (data) { frame.srcdoc = data.html; })
        .catch(function () { /* the preview follows at the next change */ });
    }, 250);
  }
  previewSelect.addEventListener("change", function () { choose(Number(previewSelect.value)); });
  function showErrors(data) {
    var box = root.querySelector("[data-errors]"), list = root.querySelector("[data-error-list]");
    list.textContent = "";
    (data.errors || []).forEach(function (m) { list.appendChild(el("li", {text: m})); });
    root.querySelector("[data-yaml]").textContent = data.yaml || "";
    box.classList.toggle("d-none", !(data.errors || []).length);
  }
  function save(body) {
    status.textContent = "Saving…";
    body.force = root.querySelector("[data-force]").checked;
    post(root.dataset.saveUrl, body)
      .then(function (r) { return r.json(); })
      .then(function (data) {
        showErrors(data);
        if (!data.ok) { status.textContent = "Not saved"; return; }
        def = data.definition;
        dirty = false;
        root.querySelector("[data-yaml-text]").value = data.yaml;
        showExperiment();
        status.textContent = "Saved (" + data.status + ")" + ((data.warnings || []).length ? ": " + data.warnings.join("; ") : "");
        render();
      })
      .catch(function () { status.textContent = "Not saved: the server did not answer; try again."; });
  }
  root.querySelector("[data-save]").addEventListener("click", function () { save({definition: def}); });
  root.querySelector("[data-save-yaml]").addEventListener("click", function () {
    save({yaml: root.querySelector("[data-yaml-text]").value});
  });
  function showExperiment() {
    root.querySelectorAll("[data-exp]").forEach(function (input) {
      var key = input.dataset.exp;
      input.value = def[key] === undefined || def[key] === null ? "" : def[key];
    });
  }
  root.querySelectorAll("[data-exp]").forEach(function (input) {
    var key = input.dataset.exp;
    input.addEventListener("input", function () {
      var v = input.type === "number" ? (input.value.trim() === "" ? "" : Number(input.value)) : input.value;
      if (key === "title") def.title = v; else setOrDelete(def, key, v);
      changed();
    });
  });
  root.querySelectorAll("[data-add-form]").forEach(function (b) {
    b.addEventListener("click", function () {
      var handler = b.dataset.addForm;
      var form = {name: fresh(handler === "form_end_session" ? "end" : handler === "form_consent" ? "consent" : "page", formNames()), handler: handler};
      if (handler === "form_consent") form.questions = [{key: fresh("agree", allKeys()), text: "I agree to take part.", type: "radiogroup", choices: ["I agree", "I do not agree"], required: true}];
      var end = def.forms.length && def.forms[def.forms.length - 1].handler === "form_end_session" ? def.forms.length - 1 : def.forms.length;
      var at = handler === "form_end_session" ? def.forms.length : (handler === "form_consent" ? 0 : end);
      def.forms.splice(at, 0, form);
      selected = at;
      changed(true);
    });
  });
  showExperiment();
  window.addEventListener("beforeunload", function (e) { if (dirty) { e.preventDefault(); e.returnValue = ""; } });
  render();
})();
