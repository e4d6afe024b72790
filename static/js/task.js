/* The progress page of a background task (templates/home/task.html): asks the server for the
   task's state every second until it is finished, and updates the bar, the counts, the summary,
   the failure and the download button in place. No inline code (the Content-Security-Policy). */
(function () {
  "use strict";

  var box = document.getElementById("task");
  if (!box || box.getAttribute("data-finished") === "true") {
    return;
  }
  var url = box.getAttribute("data-status-url");
  var numbers = new Intl.NumberFormat(document.documentElement.lang || "id");
  var colors = {queued: "secondary", running: "primary", done: "success", failed: "danger"};

  function field(name) {
    return box.querySelector('[data-field="' + name + '"]');
  }

  function show(name, text) {
    var element = field(name);
    element.textContent = text || "";
    element.hidden = !text;
  }

  function update(status) {
    var badge = field("state_label");
    badge.textContent = status.state_label;
    badge.setAttribute("data-state", status.state);
    badge.className = "badge text-bg-" + (colors[status.state] || "secondary");
    field("step").textContent = status.step || "";
    field("percent").value = status.percent;
    field("done").textContent = numbers.format(status.done);
    field("total").textContent = numbers.format(status.total);
    show("summary", status.summary);
    show("error", status.error);
    var download = field("download");
    if (status.download) {
      download.href = status.download;
      download.hidden = false;
    }
    field("waiting").hidden = status.finished;
    box.setAttribute("data-finished", status.finished ? "true" : "false");
  }

  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status);
        }
        return response.json();
      })
      .then(function (status) {
        if (status.next) {  // its result has a page of its own (a usage file's preview)
          window.location.assign(status.next);
          return;
        }
        update(status);
        if (!status.finished) {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 5000);  // the server is busy or restarting: try again a little later
      });
  }

  window.setTimeout(poll, 1000);
})();
