// The task page: a running task's output and state, live (Server-Sent Events of
// /tasks/<id>/events).  Text only ever enters the page as text nodes (never as HTML).
"use strict";

function onOutput(chunk) {
  const pre = document.getElementById("task-output");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(document.createTextNode(chunk.text));
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

function onState(state) {
  const exit = state.exit_code === null || state.exit_code === undefined ? "" : String(state.exit_code);
  const shown = document.getElementById("task-state");
  shown.className = `result ${state.state_class}`;
  shown.textContent = state.state;
  document.getElementById("task-exit").textContent = exit ? `exit ${exit}` : "";
  // The shown try's row in the table of tries follows too.
  const row = document.querySelector("#tries tr.shown");
  if (row) {
    const result = row.querySelector(".result");
    result.className = `result ${state.state_class}`;
    result.textContent = state.state;
    row.cells[2].textContent = exit;
  }
}

function onDone(state, source, root) {
  source.close();
  onState(state);
  const cancel = document.getElementById("cancel-form");
  if (cancel) cancel.remove();
  root.dataset.live = "false";
}

function followTask(root) {
  const url = `/tasks/${encodeURIComponent(root.dataset.taskId)}/events` +
    `?try=${encodeURIComponent(root.dataset.try)}&offset=${encodeURIComponent(root.dataset.offset)}`;
  const source = new EventSource(url);
  const handle = (handler) => (event) => handler(JSON.parse(event.data), source, root);
  source.addEventListener("output", handle(onOutput));
  source.addEventListener("state", handle(onState));
  source.addEventListener("done", handle(onDone));
  // Another try started than the page shows: the page is read again (its tries, its output).
  source.addEventListener("newtry", () => { source.close(); window.location.reload(); });
  root.dataset.following = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("task");
  if (root && root.dataset.live === "true") followTask(root);
});
