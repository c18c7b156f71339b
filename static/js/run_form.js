/* Ensemble Live participant form: time zone and client clock on submit, slider read-outs
   (a slider counts as answered once moved),
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

  // A slider has no answer until it is moved: the server drops the value of every slider
  // still named by an "_untouched" marker, and the read-out says "not set" until then.
  form.querySelectorAll("input[type=range]").forEach(function (slider) {
    var out = form.querySelector('output[for="' + slider.id + '"]');
    var marker = form.querySelector('input[data-untouched-for="' + slider.id + '"]');
    if (marker) slider.classList.add("slider-untouched");
    var touch = function () {
      if (out) out.textContent = slider.value;
      slider.classList.remove("slider-untouched");
      if (marker) { marker.remove(); marker = null; }
    };
    slider.addEventListener("input", touch);
    slider.addEventListener("change", touch);
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
