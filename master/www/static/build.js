// The build and log pages: earlier log lines on demand, and a running build's live events.
// Plain DOM, no framework; text only ever enters the page as text nodes (never as HTML).
"use strict";

const EARLIER_BATCH = 500;

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function loadEarlier(button) {
  const first = parseInt(button.dataset.first, 10);
  const from = Math.max(0, first - EARLIER_BATCH);
  const pre = button.parentNode.querySelector("pre.logtext");
  button.disabled = true;
  fetch(`${button.dataset.url}?first=${from}&last=${first - 1}`, {credentials: "same-origin"})
    .then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.text();
    })
    .then((text) => {
      pre.insertBefore(document.createTextNode(text), pre.firstChild);
      button.dataset.first = String(from);
      button.textContent = `Load earlier lines (${from} not shown)`;
      button.disabled = false;
      if (from === 0) button.remove();
    })
    .catch((error) => { button.textContent = `Could not load: ${error.message}`; });
}

function stepItem(number, name) {
  let item = document.getElementById(`step-${number}`);
  if (item) return item;
  item = el("li", {class: "step", id: `step-${number}`, "data-number": String(number)});
  const head = el("div", {class: "step-head"});
  head.append(el("span", {class: "step-name"}, name || `step ${number}`), " ",
              el("span", {class: "result result-running", "data-role": "result"}, "running"), " ",
              el("span", {class: "state", "data-role": "state"}, ""), " ",
              el("span", {class: "duration", "data-role": "duration"}, ""));
  item.append(head, el("div", {class: "logs", "data-role": "logs"}));
  document.getElementById("steps").append(item);
  return item;
}

function onStep(step) {
  const item = stepItem(step.number, step.name);
  item.querySelector(".step-name").textContent = step.name;
  const result = item.querySelector("[data-role=result]");
  result.className = `result ${step.result_class}`;
  result.textContent = step.result_label;
  item.querySelector("[data-role=state]").textContent = step.state_string;
  item.querySelector("[data-role=duration]").textContent = step.duration;
}

function onNewLog(entry) {
  if (document.getElementById(`log-${entry.logid}`)) return;
  const box = el("details", {class: "log", id: `log-${entry.logid}`, "data-logid": String(entry.logid), open: ""});
  const summary = el("summary", {}, `${entry.name} · `);
  summary.append(el("a", {href: `${entry.url}/raw`, download: ""}, "download"));
  box.append(summary, el("pre", {class: "logtext"}));
  stepItem(entry.step).querySelector("[data-role=logs]").append(box);
}

function onLines(chunk) {
  const box = document.getElementById(`log-${chunk.logid}`);
  if (!box) return;
  const pre = box.querySelector("pre.logtext");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(document.createTextNode(chunk.text));
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

function onDone(build, source) {
  source.close();
  const result = document.querySelector("#build-result .result");
  if (result) {
    result.className = `result ${build.result_class}`;
    result.textContent = build.result_label;
  }
  document.getElementById("build-state").textContent = build.state_string;
  const stop = document.getElementById("stop-form");
  if (stop) stop.remove();
  document.getElementById("build").dataset.running = "false";
}

function followBuild(root) {
  const url = `/builds/${root.dataset.buildid}/events?logs=${encodeURIComponent(root.dataset.positions)}`;
  const source = new EventSource(url);
  const handle = (handler) => (event) => handler(JSON.parse(event.data), source);
  source.addEventListener("step", handle(onStep));
  source.addEventListener("newlog", handle(onNewLog));
  source.addEventListener("lines", handle(onLines));
  source.addEventListener("done", handle(onDone));
  root.dataset.live = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.earlier")) {
    button.addEventListener("click", () => loadEarlier(button));
  }
  const root = document.getElementById("build");
  if (root && root.dataset.running === "true") followBuild(root);
});
