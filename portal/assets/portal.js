// The portal works without this script; it adds confirmations for
// destructive actions, a "go back" link, and the live status and log of the
// open Element page. Text from the server is inserted as text, never HTML.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-back]");
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function renderLog(lines) {
  const body = document.getElementById("log-lines");
  const box = body.closest(".table-wrap");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  const rows = lines.map((line) => {
    const tr = document.createElement("tr");
    tr.className = "level-" + line.level;
    cell(tr, line.time);
    cell(tr, line.level);
    cell(tr, line.source);
    const code = document.createElement("code");
    code.textContent = line.requestId;
    cell(tr, "").appendChild(code);
    cell(tr, line.message, "message");
    return tr;
  });
  body.replaceChildren(...rows);
  document.getElementById("log-empty").hidden = lines.length > 0;
  if (atBottom) box.scrollTop = box.scrollHeight;
}

const LIGHTS = { LOADED: "green", SERVING: "amber", FAILED: "red", DISABLED: "grey" };

function renderStatus(live) {
  document.getElementById("status").textContent = live.status;
  document.getElementById("version").textContent = String(live.version);
  document.getElementById("serving").textContent = live.serving;
  const light = document.getElementById("status-light");
  light.className = "light " + (LIGHTS[live.status] || "grey");
  const name = location.pathname.split("/").pop();
  const entry = document.querySelector(`#element-list a[data-element="${CSS.escape(name)}"]`);
  if (entry) {
    entry.dataset.status = live.status;
    entry.querySelector(".light").className = "light " + (LIGHTS[live.status] || "grey");
    entry.querySelector(".visually-hidden").textContent = "(" + live.status + ")";
  }
  const box = document.getElementById("last-error");
  box.hidden = !live.lastError;
  document.getElementById("last-error-text").textContent = live.lastError;
  document.getElementById("last-error-at").textContent = live.lastErrorAt;
}

function startLive() {
  const facts = document.querySelector("[data-live]");
  if (!facts) return;
  const url = facts.getAttribute("data-live");
  const toggle = document.getElementById("log-refresh");
  const state = document.getElementById("log-state");
  let busy = false;
  async function refresh() {
    if (busy || !toggle.checked || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.includes("application/json")) {
        state.textContent = response.redirected || response.status === 401
          ? "Refresh stopped: your session ended. Reload the page to log in again."
          : "Refresh failed (" + response.status + "); retrying.";
        return;
      }
      const live = await response.json();
      renderStatus(live);
      renderLog(live.log);
      state.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    } catch (error) {
      state.textContent = "Refresh failed: the server is unreachable; retrying.";
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, 2000);
  refresh();
}

startLive();
