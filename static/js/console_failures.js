/* Console notices of failed jsPsych timelines (runner/failures.py): polls the group
   session's failures every few seconds (GET [data-failures-url]) and offers "Skip this
   form" for each open one (POST to its skip_url; the participant's "Try again" then
   moves on). */
(function () {
  "use strict";
  var card = document.querySelector("[data-failures-card]");
  if (!card) return;
  var list = card.querySelector("[data-failures]");
  var csrf = document.querySelector("input[name=csrfmiddlewaretoken]");
  var POLL_MS = 4000;

  function skip(failure, button) {
    if (!window.confirm("Skip the form '" + failure.form + "' for " + failure.participant + "? Nothing is stored for it.")) return;
    button.disabled = true;
    fetch(failure.skip_url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrf ? csrf.value : "", "Accept": "application/json" },
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (!body.ok) window.alert(body.message || body.code);
      poll();
    }).catch(function () { button.disabled = false; });
  }

  function render(failures) {
    card.classList.toggle("d-none", !failures.length);
    list.innerHTML = "";
    failures.forEach(function (f) {
      var li = document.createElement("li");
      li.className = "mb-2";
      li.dataset.failure = f.id;
      var head = document.createElement("div");
      head.textContent = new Date(f.at).toLocaleTimeString() + " · " + f.participant + " · form " + f.form +
        " (visit " + f.visit + ") · " + f.kind + (f.skipped ? " · skipped" : "");
      var message = document.createElement("code");
      message.textContent = f.message;
      li.appendChild(head);
      li.appendChild(message);
      if (!f.skipped) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "btn btn-sm btn-outline-danger ms-2";
        button.textContent = "Skip this form for " + f.participant;
        button.addEventListener("click", function () { skip(f, button); });
        li.appendChild(button);
      }
      list.appendChild(li);
    });
  }

  function poll() {
    fetch(card.dataset.failuresUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body) render(body.failures); })
      .catch(function () { /* offline: the next poll tries again */ });
  }

  poll();
  window.setInterval(poll, POLL_MS);
})();
