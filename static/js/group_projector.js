/* The projector view: "n joined" follows the group session's state over the experimenter
   socket (everyone not kicked counts as joined). */
(function () {
  "use strict";
  var root = document.getElementById("projector");
  if (!root || !window.EnsembleProtocol) return;
  var joined = root.querySelector("[data-joined]");
  var link = root.querySelector("[data-link]");
  new window.EnsembleProtocol.GroupSocket(root.dataset.wsPath, {
    onState: function (state) {
      var people = (state.participants || []).filter(function (p) { return p.status !== "kicked"; });
      joined.textContent = String(people.length);
    },
    onStatus: function (status) {
      link.textContent = status === "online" ? "live" : status;
      link.classList.toggle("d-none", status === "online");
    }
  });
})();
