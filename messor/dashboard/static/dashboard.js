// Messor's dashboard: polls the JSON of this server and draws it. No library, no network
// but this server. Every text from the memory (ids, errors, hosts) goes in as text, never
// as HTML.
"use strict";

const params = new URLSearchParams(location.search);
const POLL_MS = 1000 * Number(params.get("interval") || 2);
const GROUPS_POLL_MS = 10000;
const token = document.querySelector('meta[name="messor-token"]').content;

const $ = (id) => document.getElementById(id);
const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const clock = (t) => (t ? new Date(t * 1000).toLocaleString() : "");

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  const minutes = Math.round(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function showOverview(data) {
  const counts = data.counts;
  const progress = data.progress;
  for (const status of ["pending", "completed", "failed", "gave_up"]) {
    $(`count-${status}`).textContent = number(counts[status] || 0);
  }
  // Failed for good (gave_up) only once a task is: most harvests have none.
  $("card-gave_up").hidden = !counts.gave_up;
  $("count-total").textContent = number(progress.total);
  $("rate").textContent =
    progress.rate_per_second === null ? "–" : `${progress.rate_per_second.toFixed(1)}/s`;
  $("eta").textContent = progress.total_known ? duration(progress.eta_seconds) : "unknown";
  const total = progress.total || 1;
  $("progress-done").style.width = `${(100 * (counts.completed || 0)) / total}%`;
  const failed = (counts.failed || 0) + (counts.gave_up || 0);
  $("progress-failed").style.width = `${(100 * failed) / total}%`;
  $("percent").textContent = progress.percent === null ? "–" : `${progress.percent}%`;
  $("mode").textContent = data.allow_retry ? "retry enabled" : "read-only";
  $("updated").textContent = `updated ${new Date(data.time * 1000).toLocaleTimeString()}`;
  showRuns(data);
  drawChart(data.runs);
}

// "until 12:03:07 (429), 4 s left", while a live run is paused by a server.
function pause(run, now) {
  if (run.state !== "live" || !run.paused_until || run.paused_until <= now) return "";
  const until = new Date(run.paused_until * 1000).toLocaleTimeString();
  return `until ${until} (${run.pause_reason || "no reason given"}), ${duration(run.paused_until - now)} left`;
}

// "tokens_in 81,200 · cost 0.3125": what a run's tasks reported, summed.
function spent(usage) {
  return Object.entries(usage || {})
    .map(([name, amount]) => `${name} ${Number(amount).toLocaleString("en", { maximumFractionDigits: 4 })}`)
    .join(" · ");
}

function showRuns(data) {
  const body = $("runs").tBodies[0];
  body.replaceChildren();
  const live = data.runs.filter((run) => run.state === "live").length;
  $("runs-note").textContent = !data.keeps_beats
    ? "This memory keeps no heartbeats: its runs cannot be shown."
    : live
      ? ""
      : "No run is going on.";
  for (const run of data.runs) {
    const row = document.createElement("tr");
    row.className = run.state;
    cell(row, run.state === "stale" ? "stale (crashed or killed?)" : run.state);
    cell(row, run.host);
    cell(row, run.pid, "num");
    cell(row, clock(run.started));
    cell(row, number(run.completed), "num");
    cell(row, run.gave_up ? `${number(run.failed)} + ${number(run.gave_up)} for good` : number(run.failed), "num");
    cell(row, number(run.retried), "num");
    cell(row, run.rate === null || run.rate === undefined ? "–" : `${run.rate.toFixed(1)}/s`, "num");
    cell(row, run.concurrency ? `${run.in_flight} of ${run.concurrency}` : "–", "num");
    cell(row, run.throttled ? number(run.throttled) : "", "num");
    cell(row, pause(run, data.time), "pause");
    cell(row, spent(run.usage));
    cell(row, run.finished ? run.stopped_because || "every task done" : "");
    body.appendChild(row);
  }
}

function drawChart(runs) {
  const run = runs.find((r) => r.state === "live") || runs[0];
  const points = run && run.history ? run.history : [];
  const line = $("chart-line");
  const area = $("chart-area");
  // One step per interval between samples: the outcomes per second over it.
  const steps = [];
  for (let i = 1; i < points.length; i++) {
    const seconds = points[i][0] - points[i - 1][0];
    if (seconds > 0) steps.push([points[i - 1][0], points[i][0], (points[i][1] - points[i - 1][1]) / seconds]);
  }
  if (!steps.length) {
    line.removeAttribute("d");
    area.removeAttribute("d");
    $("chart-note").textContent = run ? "(the run is too young, or was too short, to chart)" : "(no run yet)";
    return;
  }
  const start = points[0][0];
  const end = points[points.length - 1][0];
  const top = Math.max(1, ...steps.map((s) => s[2])) * 1.1;
  const x = (t) => ((t - start) / Math.max(end - start, 1e-9)) * 800;
  const y = (rate) => 200 - (rate / top) * 195;
  let d = "";
  for (const [from, to, rate] of steps) {
    d += `${d ? "L" : "M"}${x(from).toFixed(1)},${y(rate).toFixed(1)}L${x(to).toFixed(1)},${y(rate).toFixed(1)}`;
  }
  line.setAttribute("d", d);
  area.setAttribute("d", `${d}L800,200L0,200Z`);
  $("chart-note").textContent = `(run on ${run.host}, pid ${run.pid}, ${run.state})`;
  $("chart-start").textContent = clock(start);
  $("chart-max").textContent = `max ${(top / 1.1).toFixed(1)}/s`;
  $("chart-end").textContent = clock(end);
}

function showGroups(data) {
  const body = $("groups").tBodies[0];
  body.replaceChildren();
  const allowRetry = $("mode").textContent === "retry enabled" && token;
  if (!data.groups.length) {
    $("groups-note").textContent = "No failed tasks.";
  } else if (data.complete) {
    const groups = data.group_count === 1 ? "1 group" : `${number(data.group_count)} groups`;
    $("groups-note").textContent = `${number(data.examined)} failures in ${groups}.`;
  } else {
    $("groups-note").textContent =
      `Groups among the first ${number(data.examined)} failures only (a sample: counts are ` +
      "of the sample); `messor failed --group-by error` counts them all.";
  }
  for (const group of data.groups) {
    const row = document.createElement("tr");
    row.dataset.key = group.key;
    cell(row, number(group.count), "num count");
    const cause = cell(row, "");
    const code = document.createElement("code");
    code.textContent = [group.error_class, group.pattern].filter(Boolean).join(": ") || "(no error recorded)";
    cause.appendChild(code);
    const example = cell(row, "");
    const small = document.createElement("code");
    small.textContent = `${group.example_id}: ${group.example_error.split("\n")[0]}`;
    example.appendChild(small);
    const action = cell(row, "");
    if (allowRetry) {
      const button = document.createElement("button");
      button.className = "retry";
      button.textContent = "retry";
      button.title = `make the failed tasks of this group pending again (key ${group.key})`;
      button.addEventListener("click", () => retryGroup(group.key, button));
      action.appendChild(button);
    }
    body.appendChild(row);
  }
}

async function retryGroup(key, button) {
  button.disabled = true;
  try {
    const response = await fetch("/api/retry", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Messor-Token": token },
      body: JSON.stringify({ group: key }),
    });
    const answer = await response.json();
    $("retry-message").textContent = response.ok
      ? `${answer.reset} tasks are pending again: the next run of the harvest runs them.`
      : `Refused: ${answer.error}`;
    await Promise.all([refreshOverview(), refreshGroups()]);
  } finally {
    button.disabled = false;
  }
}

async function refreshOverview() {
  try {
    showOverview(await getJSON("/api/overview"));
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = `Could not read the memory: ${error.message}`;
  }
}

async function refreshGroups() {
  try {
    showGroups(await getJSON("/api/failures"));
  } catch (error) {
    $("error").textContent = `Could not read the failures: ${error.message}`;
  }
}

refreshOverview().then(refreshGroups);
setInterval(refreshOverview, POLL_MS);
setInterval(refreshGroups, GROUPS_POLL_MS);
