/* Ensemble Live participant form: time zone and client clock on submit, slider read-outs,
   one submission per click (the server also refuses repeats). */
(function () {
  "use strict";
  var form = document.querySelector("form[data-run-form]");
  if (!form) return;

  function setHidden(name, value) {
    var input = form.querySelector('input[name="' + name + '"]');
    if (input) input.value = value;
  }
  try {
    setHidden("_tz", Intl.DateTimeFormat().resolvedOptions().timeZone || "");
  } catch (e) { /* old browser: no time zone */ }

  form.querySelectorAll("input[type=range]").forEach(function (slider) {
    var out = form.querySelector('output[for="' + slider.id + '"]');
    var show = function () { if (out) out.textContent = slider.value; };
    slider.addEventListener("input", show);
    show();
  });

  var sending = false;
  form.addEventListener("submit", function (event) {
    if (sending) { event.preventDefault(); return; }
    sending = true;
    setHidden("_client_ms", String(Date.now()));
    var button = event.submitter;
    if (button && button.name) {
      var copy = document.createElement("input");
      copy.type = "hidden";
      copy.name = button.name;
      copy.value = button.value;
      form.appendChild(copy);
    }
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  });
})();
