// apiwatch dashboard: local times, charts (uPlot) and live alerts (polling /api/alerts).
// Data arrives as text: every value is written with textContent, never as HTML.
"use strict";

const POLL_MS = 3000;
const COLORS = ["#2f7d32", "#c62828", "#757575", "#1565c0", "#ef6c00"];

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.dateTime);
    if (!isNaN(when)) el.textContent = when.toLocaleString();
  }
}

function charts() {
  if (typeof uPlot === "undefined") return;
  for (const el of document.querySelectorAll(".chart[data-chart]")) {
    const data = JSON.parse(el.dataset.chart);
    const names = Object.keys(data.series);
    const opts = {
      width: Math.max(el.clientWidth, 300), height: 180,
      series: [{}].concat(names.map((name, i) => ({
        label: name, stroke: COLORS[i % COLORS.length], width: 2,
      }))),
      axes: [{}, {size: 50}],
    };
    new uPlot(opts, [data.x].concat(names.map((n) => data.series[n])), el);
    el.dataset.ready = "1";
  }
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function stamp(row, text) {
  const td = document.createElement("td");
  const t = document.createElement("time");
  t.dateTime = text;
  t.title = text + " (UTC)";
  t.textContent = text;
  td.appendChild(t);
  row.appendChild(td);
}

function alertRow(a) {
  const tr = document.createElement("tr");
  tr.dataset.alertId = a.id;
  tr.className = "new";
  const sev = document.createElement("span");
  sev.className = "sev sev-" + String(a.severity).replace(/[^a-z]/g, "");
  sev.textContent = a.severity;
  cell(tr, "").appendChild(sev);
  const link = document.createElement("a");
  link.href = "/alerts/" + encodeURIComponent(a.id);
  link.textContent = a.title;
  cell(tr, "").appendChild(link);
  cell(tr, a.status);
  cell(tr, Object.keys(a.group).sort().map((k) => k + "=" + a.group[k]).join(" "));
  cell(tr, String(a.count));
  stamp(tr, a.first_seen);
  stamp(tr, a.last_seen);
  localTimes(tr);
  return tr;
}

async function fetchAlerts(url) {
  const response = await fetch(url, {credentials: "same-origin", headers: {accept: "application/json"}});
  if (!response.ok) return null;
  return (await response.json()).alerts;
}

function liveAlerts() {
  const table = document.querySelector("table[data-live]");
  const badge = document.querySelector("#open-alerts[data-poll]");
  async function poll() {
    try {
      if (badge) {
        const open = await fetchAlerts(badge.dataset.poll);
        if (open) badge.textContent = open.length ? String(open.length) : "";
      }
      if (table) {
        const alerts = await fetchAlerts(table.dataset.live);
        const body = table.tBodies[0];
        const known = new Set([...body.rows].map((r) => r.dataset.alertId));
        for (const a of (alerts || []).slice().reverse()) {
          if (!known.has(a.id)) body.insertBefore(alertRow(a), body.firstChild);
        }
      }
    } catch (e) {
      // The collector restarting is no reason to stop polling.
    }
    setTimeout(poll, POLL_MS);
  }
  if (table || badge) poll();
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  charts();
  liveAlerts();
});
