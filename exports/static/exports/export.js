// Polls an export job's JSON status and moves the progress bar; shows the download link when done.
(function () {
  const box = document.getElementById("export-job");
  if (!box) return;
  const bar = document.getElementById("export-bar");
  const message = document.getElementById("export-message");
  const error = document.getElementById("export-error");
  const download = document.getElementById("export-download");
  async function poll() {
    let job;
    try {
      const response = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } });
      job = await response.json();
    } catch (e) {
      setTimeout(poll, 2000);
      return;
    }
    bar.style.width = job.progress + "%";
    bar.textContent = job.progress + "%";
    bar.parentElement.setAttribute("aria-valuenow", job.progress);
    message.textContent = job.message || job.status;
    if (job.status === "done" && job.summary && job.summary.file) {
      const sessions = job.summary.sessions === 1 ? "1 session" : job.summary.sessions + " sessions";
      message.textContent = "Done: " + job.summary.file + " (" + sessions + ")";
      if (job.summary.identifying && job.summary.identifying.length) {
        message.textContent += " — identifiable: " + job.summary.identifying.join(", ");
        message.classList.add("text-warning-emphasis");
      }
    }
    error.textContent = job.error || "";
    showInRecentList(job);
    if (job.status === "done") {
      bar.classList.add("bg-success");
      download.href = job.download;
      download.classList.remove("d-none");
    } else if (job.status === "failed") {
      bar.classList.add("bg-danger");
    } else {
      setTimeout(poll, 1000);
    }
  }
  // The same job in the "Recent exports" list says what the card says.
  function showInRecentList(job) {
    const item = document.querySelector('[data-export-job="' + box.dataset.job + '"]');
    if (!item) return;
    item.querySelector("[data-export-job-status]").textContent = job.status;
    const link = item.querySelector("[data-export-job-download]");
    if (job.status === "done" && job.download && !link.querySelector("a")) {
      const a = document.createElement("a");
      a.href = job.download;
      a.textContent = "download";
      link.append("· ", a);
    }
  }
  poll();
})();
