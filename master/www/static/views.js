// The grid and console pages, live: a build's cell changes in place when it starts or ends,
// and the rows are fetched again (not the page) when a new change or a build of a change on
// the page arrives.  Plain DOM; the rows come from the server already escaped.
"use strict";

const REFRESH_DELAY_MS = 300;

function liveGrid(table) {
  const body = table.querySelector("tbody");
  let refreshTimer = null;

  function refresh() {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      fetch(table.dataset.rows, {credentials: "same-origin"})
        .then((response) => {
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          return response.text();
        })
        .then((html) => {
          body.innerHTML = html;
          showTotal();
          table.dataset.refreshed = String(Date.now());
        })
        .catch((error) => { table.dataset.refreshError = String(error); })
        .finally(() => { refreshTimer = null; });
    }, REFRESH_DELAY_MS);
  }

  function showTotal() {
    // The rows end with a hidden one that says how many changes there are now.
    const total = body.querySelector("tr[data-total-text]");
    const shown = document.getElementById("changes-total");
    if (total !== null && shown !== null) shown.textContent = total.dataset.totalText;
  }

  function showBuild(build) {
    const cells = table.querySelectorAll(`a[data-build="${build.buildid}"]`);
    for (const cell of cells) {
      cell.className = `cell ${build.css}`;
      cell.dataset.state = build.state;
      cell.title = build.label + (build.slavename ? ` on ${build.slavename}` : "");
      cell.querySelector(".sym").textContent = build.symbol;
      cell.querySelector(".sr").textContent = build.label;
    }
    if (cells.length === 0 && build.changeid !== null &&
        body.querySelector(`tr[data-change="${build.changeid}"] td[data-builder="${CSS.escape(build.buildername)}"]`)) {
      refresh();  // a new build of a change on the page, on a builder shown
    }
  }

  const events = new EventSource("/views/events");
  events.addEventListener("build", (event) => showBuild(JSON.parse(event.data)));
  events.addEventListener("change", () => { if (table.dataset.live === "true") refresh(); });
  events.addEventListener("refresh", refresh);
  events.addEventListener("hello", () => { table.dataset.listening = "true"; });
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("grid");
  if (table !== null) liveGrid(table);
});
