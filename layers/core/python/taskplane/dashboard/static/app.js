// taskplane dashboard: hash routes, one view at a time, live refresh by polling the HTTP API.
import { ApiError, apiKey, call, get, post, signIn, signOut } from "./api.js";
import { drawDag } from "./dag.js";

const STATES = ["SCHEDULED", "PENDING", "RUNNING", "RETRYING", "TIMED_OUT", "SUCCEEDED", "FAILED", "CANCELLED"];
const CANCELLABLE = new Set(["SCHEDULED", "PENDING", "RETRYING"]);
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "COMPENSATED"]);
const LANES = ["high", "default", "low"];
const TASK_REFRESH_MS = 1500;
const RUN_REFRESH_MS = 700;
const STATS_REFRESH_MS = 5000;

// -- DOM helpers (text only: API data never becomes HTML) -----------------------------------------
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const main = () => document.getElementById("main");

function toast(message, kind = "info") {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = `toast show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = "toast"), 4000);
}

function pad(n, w = 2) {
  return String(n).padStart(w, "0");
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function relative(iso) {
  if (!iso) return "";
  const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const a = Math.abs(s);
  const text = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

function timeCell(iso) {
  return iso ? h("time", { datetime: iso, title: relative(iso) }, fmtTime(iso)) : "—";
}

function badge(state) {
  return h("span", { class: `badge st-${String(state || "").toLowerCase()}`, "data-state": state }, state || "?");
}

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

function describeTarget(t) {
  if (!t) return "";
  switch (t.type) {
    case "builtin": return `builtin:${t.name}`;
    case "lambda": return `lambda:${t.function}`;
    case "http": return `${t.method || "POST"} ${t.url}`;
    case "sqs": return `sqs:${String(t.queue_url || "").split("/").pop()}`;
    case "eventbridge": return `events:${t.bus || "default"}`;
    default: return t.type;
  }
}

function labelsText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

function errorBox(err) {
  const what = err instanceof ApiError ? `${err.status} ${err.code}: ${err.message}` : String(err.message || err);
  return h("p", { class: "error", role: "alert" }, what);
}

function notAvailable(what) {
  return h("p", { class: "muted notice", "data-unavailable": "true" },
    `${what} not available on this deployment (the API answered 404).`);
}

// -- live refresh: every view registers its pollers; a route change stops them -----------------
let timers = [];
function every(ms, fn) {
  let stopped = false;
  let handle = null;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return expired();
      }
    }
    if (!stopped) handle = setTimeout(tick, ms);
  };
  handle = setTimeout(tick, ms);
  const stop = () => { stopped = true; clearTimeout(handle); };
  timers.push(stop);
  return stop;
}
function stopTimers() {
  timers.forEach((s) => s());
  timers = [];
}

function expired() {
  signOut();
  toast("The API key was refused: sign in again.", "bad");
  route();
}

// -- header: queue depth per lane and throughput --------------------------------------------------
let statsStop = null;
async function refreshStats() {
  const box = document.getElementById("stats");
  box.hidden = false;
  let s;
  try {
    s = await get("/v1/stats");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      box.replaceChildren(h("span", { class: "muted" }, "stats not available"));
      return;
    }
    throw err;
  }
  const lanes = s.lanes || {};
  const items = LANES.filter((l) => l in lanes).map((l) => {
    const d = lanes[l];
    const depth = d ? d.visible + d.delayed : null;
    const title = d ? `${l}: ${d.visible} waiting, ${d.delayed} delayed, ${d.in_flight} in flight` : `${l}: n/a`;
    return h("span", { class: "stat", title, "data-lane": l },
      h("span", { class: "k" }, l), h("span", { class: "v" }, depth === null ? "n/a" : depth));
  });
  const counts = s.counts || {};
  box.replaceChildren(
    h("span", { class: "stat-group", "aria-label": "Queue depth per lane" }, h("span", { class: "muted" }, "queued"), ...items),
    h("span", { class: "stat", title: `tasks finished in the last ${s.window_s} s, per minute`, "data-stat": "throughput" },
      h("span", { class: "k" }, "done/min"), h("span", { class: "v" }, s.throughput_per_min)),
    h("span", { class: "stat", title: `of your newest ${s.sampled} tasks` },
      h("span", { class: "k" }, "running"), h("span", { class: "v" }, counts.RUNNING || 0)),
    h("span", { class: "stat", title: `of your newest ${s.sampled} tasks` },
      h("span", { class: "k" }, "failed"), h("span", { class: "v bad" }, counts.FAILED || 0)),
  );
}
function startStats() {
  if (statsStop) return;
  refreshStats().catch(() => {});
  let stopped = false;
  const loop = async () => {
    if (stopped) return;
    if (!document.hidden) await refreshStats().catch(() => {});
    statsTimer = setTimeout(loop, STATS_REFRESH_MS);
  };
  let statsTimer = setTimeout(loop, STATS_REFRESH_MS);
  statsStop = () => { stopped = true; clearTimeout(statsTimer); };
}

// -- sign in --------------------------------------------------------------------------------------
function viewSignIn() {
  const input = h("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true,
    spellcheck: "false", "aria-describedby": "key-help",
  });
  const status = h("p", { class: "error", role: "alert", id: "signin-error" });
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { id: "key-help", class: "muted" },
      "Your tenant's API key. It stays in this browser tab (sessionStorage) and is sent only in the x-api-key header."),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    status,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.textContent = "";
    const key = input.value.trim();
    try {
      await call("GET", "/v1/tasks", { query: { limit: 1 }, key });
    } catch (err) {
      status.textContent = err instanceof ApiError && err.status === 401
        ? "That API key was not accepted." : `Could not reach the API: ${err.message}`;
      return;
    }
    signIn(key);
    input.value = "";
    if (!location.hash || location.hash === "#/signin") location.hash = "#/tasks";
    else route();
  });
  main().replaceChildren(form);
  input.focus();
}

// -- tasks ------------------------------------------------------------------------------------------
const taskFilter = { state: "", labels: "", from: "", to: "", limit: 25 };
let pageCursors = [null]; // cursor of each page seen; the last one is the current page's

function matchesLabels(task, wanted) {
  const pairs = wanted.split(",").map((p) => p.trim()).filter(Boolean);
  return pairs.every((p) => {
    const [k, ...rest] = p.split("=");
    const v = rest.join("=");
    const have = (task.labels || {})[k.trim()];
    return rest.length ? have === v.trim() : have !== undefined;
  });
}

function inRange(task, from, to) {
  const t = new Date(task.created_at).getTime();
  if (from && t < new Date(from).getTime()) return false;
  if (to && t > new Date(to).getTime()) return false;
  return true;
}

function taskRow(t) {
  return h("tr", { "data-task-id": t.task_id, "data-state": t.state },
    h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(t.task_id)}`, class: "mono" }, t.task_id)),
    h("td", {}, badge(t.state)),
    h("td", {}, describeTarget(t.target)),
    h("td", {}, t.priority),
    h("td", { class: "labels" }, labelsText(t.labels)),
    h("td", {}, timeCell(t.created_at)),
    h("td", {}, timeCell(t.finished_at)),
    h("td", { class: "num" }, t.attempts),
  );
}

function newTaskForm(onDone) {
  const type = h("select", { id: "nt-target", name: "target" },
    ...["echo", "sleep", "fail"].map((n) => h("option", { value: n }, `builtin:${n}`)));
  const payload = h("textarea", { id: "nt-payload", rows: 2, spellcheck: "false" }, '{"hello": "world"}');
  const labels = h("input", { id: "nt-labels", placeholder: "team=ops, env=dev" });
  const priority = h("select", { id: "nt-priority" }, ...["default", "high", "low"].map((p) => h("option", { value: p }, p)));
  const form = h("form", { class: "inline-form", "aria-label": "Submit a task" },
    h("div", {}, h("label", { for: "nt-target" }, "Target"), type),
    h("div", { class: "grow" }, h("label", { for: "nt-payload" }, "Payload (JSON)"), payload),
    h("div", {}, h("label", { for: "nt-labels" }, "Task labels"), labels),
    h("div", {}, h("label", { for: "nt-priority" }, "Priority"), priority),
    h("button", { type: "submit", class: "primary" }, "Submit task"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let body;
    try {
      body = {
        target: { type: "builtin", name: type.value },
        payload: payload.value.trim() ? JSON.parse(payload.value) : {},
        priority: priority.value,
        labels: Object.fromEntries(labels.value.split(",").map((p) => p.trim()).filter(Boolean)
          .map((p) => { const [k, ...v] = p.split("="); return [k.trim(), v.join("=").trim()]; })),
      };
    } catch (err) {
      toast(`Payload is not JSON: ${err.message}`, "bad");
      return;
    }
    try {
      const t = await post("/v1/tasks", body);
      toast(`Submitted ${t.task_id}`);
      onDone();
    } catch (err) {
      toast(err.message, "bad");
    }
  });
  return h("details", { class: "card" }, h("summary", {}, "New task"), form);
}

function viewTasks() {
  const f = taskFilter;
  const state = h("select", { id: "f-state", name: "state" }, h("option", { value: "" }, "any"),
    ...STATES.map((s) => h("option", { value: s, selected: f.state === s }, s)));
  const labels = h("input", { id: "f-labels", name: "labels", value: f.labels, placeholder: "key=value, key2" });
  const from = h("input", { id: "f-from", name: "from", type: "datetime-local", value: f.from, step: "1" });
  const to = h("input", { id: "f-to", name: "to", type: "datetime-local", value: f.to, step: "1" });
  const limit = h("select", { id: "f-limit", name: "limit" },
    ...[10, 25, 50, 100].map((n) => h("option", { value: n, selected: f.limit === n }, n)));
  const body = h("tbody", { id: "task-rows" });
  const info = h("p", { class: "muted", "aria-live": "polite", id: "tasks-info" });
  const prev = h("button", { type: "button", "aria-label": "Previous page" }, "← Newer");
  const next = h("button", { type: "button", "aria-label": "Next page" }, "Older →");
  const pageNo = h("span", { class: "muted" });
  let nextCursor = null;

  const load = async () => {
    const cursor = pageCursors[pageCursors.length - 1];
    const page = await get("/v1/tasks", { state: f.state, limit: f.limit, cursor });
    nextCursor = page.next_cursor;
    const shown = page.items.filter((t) => matchesLabels(t, f.labels) && inRange(t, f.from, f.to));
    body.replaceChildren(...(shown.length ? shown.map(taskRow)
      : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No tasks match."))]));
    const hidden = page.items.length - shown.length;
    info.textContent = `${shown.length} shown` + (hidden ? ` (${hidden} on this page hidden by the label or time filter)` : "") +
      ` · refreshed ${fmtTime(new Date().toISOString()).slice(11)}`;
    prev.disabled = pageCursors.length <= 1;
    next.disabled = !nextCursor;
    pageNo.textContent = `page ${pageCursors.length}`;
  };
  const reload = () => load().catch((err) => info.replaceChildren(errorBox(err)));
  const apply = (ev) => {
    ev && ev.preventDefault();
    Object.assign(f, { state: state.value, labels: labels.value, from: from.value, to: to.value, limit: Number(limit.value) });
    pageCursors = [null];
    reload();
  };
  [state, limit, from, to].forEach((i) => i.addEventListener("change", apply));
  labels.addEventListener("input", apply);
  prev.addEventListener("click", () => { pageCursors.pop(); reload(); });
  next.addEventListener("click", () => { if (nextCursor) { pageCursors.push(nextCursor); reload(); } });

  const filters = h("form", { class: "filters", "aria-label": "Filter tasks", onsubmit: apply },
    h("div", {}, h("label", { for: "f-state" }, "State"), state),
    h("div", {}, h("label", { for: "f-labels" }, "Labels (key=value)"), labels),
    h("div", {}, h("label", { for: "f-from" }, "Created from"), from),
    h("div", {}, h("label", { for: "f-to" }, "Created to"), to),
    h("div", {}, h("label", { for: "f-limit" }, "Per page"), limit));
  main().replaceChildren(
    h("div", { class: "title-row" }, h("h1", {}, "Tasks")),
    newTaskForm(reload),
    filters,
    h("table", { class: "grid", id: "tasks-table" },
      h("caption", { class: "sr-only" }, "Tasks, newest first"),
      h("thead", {}, h("tr", {}, ...["Task", "State", "Target", "Priority", "Labels", "Created", "Finished", "Attempts"]
        .map((c) => h("th", { scope: "col" }, c)))),
      body),
    h("div", { class: "pager" }, prev, pageNo, next, info));
  reload();
  every(TASK_REFRESH_MS, load);
}

function timeline(history) {
  return h("ol", { class: "timeline", "aria-label": "History" },
    ...(history || []).map((e, i, all) => {
      const prevAt = i ? new Date(all[i - 1].at).getTime() : null;
      const gap = prevAt === null ? "" : `+${new Date(e.at).getTime() - prevAt} ms`;
      return h("li", { "data-state": e.state },
        h("span", { class: "dot" }), badge(e.state), " ", timeCell(e.at),
        gap ? h("span", { class: "muted gap" }, ` ${gap}`) : null,
        e.detail ? h("div", { class: "detail" }, e.detail) : null);
    }));
}

function viewTask(id) {
  const box = h("div", {});
  main().replaceChildren(h("p", {}, h("a", { href: "#/tasks" }, "← Tasks")), box);
  const render = (t) => {
    const cancel = h("button", { type: "button", disabled: !CANCELLABLE.has(t.state) }, "Cancel");
    const retry = h("button", { type: "button", class: "primary", title: "Submit a copy of this task" }, "Retry (submit a copy)");
    cancel.addEventListener("click", async () => {
      try {
        render(await post(`/v1/tasks/${encodeURIComponent(t.task_id)}/cancel`));
        toast("Cancelled");
      } catch (err) {
        toast(err.message, "bad");
      }
    });
    retry.addEventListener("click", async () => {
      const copy = { target: t.target, payload: t.payload, priority: t.priority, labels: t.labels, timeout_s: t.timeout_s, retry: t.retry };
      try {
        const created = await post("/v1/tasks", copy);
        toast(`Submitted a copy: ${created.task_id}`);
        location.hash = `#/tasks/${encodeURIComponent(created.task_id)}`;
      } catch (err) {
        toast(err.message, "bad");
      }
    });
    const facts = [
      ["State", badge(t.state)], ["Target", describeTarget(t.target)], ["Priority", t.priority],
      ["Labels", labelsText(t.labels) || "—"], ["Attempts", `${t.attempts} of ${t.retry ? t.retry.max_attempts : "?"}`],
      ["Timeout", `${t.timeout_s} s`], ["Run at", timeCell(t.run_at)], ["Created", timeCell(t.created_at)],
      ["Started", timeCell(t.started_at)], ["Finished", timeCell(t.finished_at)],
      ["Deadline", timeCell(t.deadline)], ["Schedule", t.schedule_id || "—"],
    ];
    box.replaceChildren(
      h("div", { class: "title-row" }, h("h1", {}, "Task ", h("span", { class: "mono" }, t.task_id)), h("div", { class: "actions" }, cancel, retry)),
      h("div", { class: "cols" },
        h("section", { class: "card", "aria-labelledby": "facts-h" }, h("h2", { id: "facts-h" }, "Summary"),
          h("dl", { class: "facts", id: "task-facts", "data-state": t.state }, ...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
        h("section", { class: "card", "aria-labelledby": "hist-h" }, h("h2", { id: "hist-h" }, "History"), timeline(t.history))),
      h("div", { class: "cols" },
        h("section", { class: "card", "aria-labelledby": "payload-h" }, h("h2", { id: "payload-h" }, "Payload"), json(t.payload)),
        t.error
          ? h("section", { class: "card bad", "aria-labelledby": "err-h" }, h("h2", { id: "err-h" }, "Error"), json(t.error))
          : h("section", { class: "card", "aria-labelledby": "result-h" }, h("h2", { id: "result-h" }, "Result"),
            t.result === null || t.result === undefined ? h("p", { class: "muted" }, "No result yet.") : json(t.result))));
  };
  const load = async () => {
    const t = await get(`/v1/tasks/${encodeURIComponent(id)}`);
    render(t);
    return t;
  };
  load().then((t) => {
    if (!TERMINAL.has(t.state)) {
      const stop = every(TASK_REFRESH_MS, async () => { if (TERMINAL.has((await load()).state)) stop(); });
    }
  }).catch((err) => box.replaceChildren(errorBox(err)));
}

// -- schedules --------------------------------------------------------------------------------------
function viewSchedules() {
  const body = h("tbody", { id: "schedule-rows" });
  const info = h("p", { class: "muted", "aria-live": "polite" });
  const load = async () => {
    const page = await get("/v1/schedules", { limit: 100 });
    body.replaceChildren(...(page.items.length ? page.items.map((s) => {
      const toggle = h("button", { type: "button", "aria-label": `${s.paused ? "Resume" : "Pause"} schedule ${s.name || s.schedule_id}` },
        s.paused ? "Resume" : "Pause");
      toggle.addEventListener("click", async () => {
        try {
          await post(`/v1/schedules/${encodeURIComponent(s.schedule_id)}/${s.paused ? "resume" : "pause"}`);
          await load();
        } catch (err) {
          toast(err.message, "bad");
        }
      });
      return h("tr", { "data-schedule-id": s.schedule_id, "data-state": s.state },
        h("td", {}, s.name || h("span", { class: "mono" }, s.schedule_id)),
        h("td", { class: "mono" }, s.cron), h("td", {}, s.timezone), h("td", {}, badge(s.state)),
        h("td", {}, s.next_fire_at ? [timeCell(s.next_fire_at), h("span", { class: "muted" }, ` (${relative(s.next_fire_at)})`)] : "—"),
        h("td", {}, timeCell(s.last_fire_at)),
        h("td", {}, s.last_task_id ? h("a", { href: `#/tasks/${encodeURIComponent(s.last_task_id)}`, class: "mono" }, s.last_task_id) : "—"),
        h("td", { class: "num" }, s.fires), h("td", {}, toggle));
    }) : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No schedules yet: POST /v1/schedules or `taskplane schedule create`."))]));
    info.textContent = `refreshed ${fmtTime(new Date().toISOString()).slice(11)}`;
  };
  main().replaceChildren(h("h1", {}, "Schedules"),
    h("table", { class: "grid", id: "schedules-table" }, h("caption", { class: "sr-only" }, "Schedules"),
      h("thead", {}, h("tr", {}, ...["Schedule", "Cron", "Time zone", "State", "Next fire", "Last fire", "Last task", "Fires", ""]
        .map((c) => h("th", { scope: "col" }, c)))), body), info);
  load().catch((err) => info.replaceChildren(errorBox(err)));
  every(5000, load);
}

// -- workflows and runs -----------------------------------------------------------------------------
function viewWorkflows() {
  const body = h("tbody", { id: "workflow-rows" });
  main().replaceChildren(h("h1", {}, "Workflows"),
    h("table", { class: "grid" }, h("caption", { class: "sr-only" }, "Workflows"),
      h("thead", {}, h("tr", {}, ...["Workflow", "Description", "Latest version", "Nodes", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
      body));
  get("/v1/workflows").then((page) => {
    body.replaceChildren(...(page.items.length ? page.items.map((w) => h("tr", { "data-workflow": w.name },
      h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(w.name)}` }, w.name)),
      h("td", {}, w.description || ""), h("td", { class: "num" }, w.latest_version), h("td", { class: "num" }, w.nodes),
      h("td", {}, timeCell(w.updated_at))))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No workflows yet: PUT /v1/workflows/{name} or `taskplane workflow put`."))]));
  }).catch((err) => body.replaceChildren(h("tr", {}, h("td", { colspan: 5 }, errorBox(err)))));
}

function legend() {
  return h("ul", { class: "legend", "aria-label": "Node colours" },
    ...["PENDING", "RUNNING", "RETRYING", "SUCCEEDED", "FAILED", "SKIPPED"].map((s) => h("li", {}, badge(s))),
    h("li", {}, h("span", { class: "badge comp-key" }, "undone")));
}

function viewWorkflow(name) {
  const graph = h("div", { class: "graph", id: "workflow-graph" });
  const runs = h("tbody", { id: "run-rows" });
  const input = h("textarea", { id: "run-input", rows: 3, spellcheck: "false" }, "{}");
  const start = h("form", { class: "inline-form", "aria-label": "Start a run" },
    h("div", { class: "grow" }, h("label", { for: "run-input" }, "Run input (JSON)"), input),
    h("button", { type: "submit", class: "primary" }, "Start run"));
  const head = h("div", {});
  main().replaceChildren(h("p", {}, h("a", { href: "#/workflows" }, "← Workflows")), head,
    h("section", { class: "card", "aria-labelledby": "g-h" }, h("h2", { id: "g-h" }, "Graph"), graph),
    h("section", { class: "card", "aria-labelledby": "s-h" }, h("h2", { id: "s-h" }, "Start a run"), start),
    h("section", { class: "card", "aria-labelledby": "r-h" }, h("h2", { id: "r-h" }, "Runs"),
      h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ...["Run", "Version", "State", "Started", "Finished"].map((c) => h("th", { scope: "col" }, c)))), runs)));
  start.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let body;
    try {
      body = { input: input.value.trim() ? JSON.parse(input.value) : {} };
    } catch (err) {
      toast(`Input is not JSON: ${err.message}`, "bad");
      return;
    }
    try {
      const run = await post(`/v1/workflows/${encodeURIComponent(name)}/runs`, body);
      location.hash = `#/runs/${encodeURIComponent(run.run_id)}`;
    } catch (err) {
      toast(err.message, "bad");
    }
  });
  get(`/v1/workflows/${encodeURIComponent(name)}`).then((w) => {
    head.replaceChildren(h("div", { class: "title-row" }, h("h1", {}, w.name),
      h("span", { class: "muted" }, `version ${w.version} of ${w.latest_version} · on failure: ${w.on_failure} · ${w.nodes.length} nodes`)),
      w.description ? h("p", {}, w.description) : "");
    drawDag(graph, w.nodes, w.edges, { label: `Workflow ${w.name}` });
  }).catch((err) => head.replaceChildren(errorBox(err)));
  const loadRuns = async () => {
    const page = await get(`/v1/workflows/${encodeURIComponent(name)}/runs`, { limit: 20 });
    runs.replaceChildren(...(page.items.length ? page.items.map((r) => h("tr", { "data-run-id": r.run_id },
      h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}`, class: "mono" }, r.run_id)),
      h("td", { class: "num" }, r.version), h("td", {}, badge(r.state)), h("td", {}, timeCell(r.created_at)), h("td", {}, timeCell(r.finished_at))))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No runs yet."))]));
  };
  loadRuns().catch(() => {});
  every(2000, loadRuns);
}

function viewRun(id) {
  const head = h("div", {});
  const graph = h("div", { class: "graph", id: "run-graph" });
  const nodes = h("tbody", { id: "node-rows" });
  const comps = h("div", { id: "compensations" });
  main().replaceChildren(h("p", {}, h("a", { href: "#/workflows", id: "back-link" }, "← Workflows")), head,
    h("section", { class: "card", "aria-labelledby": "rg-h" }, h("div", { class: "title-row" }, h("h2", { id: "rg-h" }, "Graph"), legend()), graph),
    h("section", { class: "card", "aria-labelledby": "n-h" }, h("h2", { id: "n-h" }, "Nodes"),
      h("div", { class: "scroll" }, h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ...["Node", "State", "Attempts", "Started", "Finished", "Error"].map((c) => h("th", { scope: "col" }, c)))), nodes))),
    h("section", { class: "card", "aria-labelledby": "c-h" }, h("h2", { id: "c-h" }, "Compensations (in the order they ran)"), comps));
  let update = null;
  let drawnFor = null;
  const render = async (run) => {
    const key = `${run.workflow}@${run.version}`;
    if (drawnFor !== key) {
      const w = await get(`/v1/workflows/${encodeURIComponent(run.workflow)}`, { version: run.version });
      update = drawDag(graph, w.nodes, w.edges, { label: `Run ${run.run_id} of ${run.workflow}` });
      drawnFor = key;
      document.getElementById("back-link").setAttribute("href", `#/workflows/${encodeURIComponent(run.workflow)}`);
      document.getElementById("back-link").textContent = `← ${run.workflow}`;
    }
    update(Object.fromEntries(run.nodes.map((n) => [n.id, n.state])),
      new Set(run.compensations.filter((c) => c.state === "SUCCEEDED").map((c) => c.node)));
    const actions = [];
    if (run.state === "RUNNING") {
      const b = h("button", { type: "button" }, "Cancel run");
      b.addEventListener("click", () => post(`/v1/runs/${encodeURIComponent(id)}/cancel`).then(load).catch((e) => toast(e.message, "bad")));
      actions.push(b);
    } else if (run.state === "FAILED" || run.state === "CANCELLED") {
      const b = h("button", { type: "button", class: "primary" }, "Resume");
      b.addEventListener("click", () => post(`/v1/runs/${encodeURIComponent(id)}/resume`).then(() => { load(); poll(); }).catch((e) => toast(e.message, "bad")));
      actions.push(b);
    }
    head.replaceChildren(h("div", { class: "title-row" },
      h("h1", {}, "Run ", h("span", { class: "mono" }, run.run_id)),
      h("span", { id: "run-state", "data-state": run.state }, badge(run.state)),
      h("span", { class: "muted" }, `${run.workflow} v${run.version} · started ${fmtTime(run.created_at)}` + (run.finished_at ? ` · finished ${fmtTime(run.finished_at)}` : "")),
      h("div", { class: "actions" }, ...actions)),
      run.error ? h("p", { class: "error" }, `${run.error.type}: ${run.error.message}`) : "");
    nodes.replaceChildren(...run.nodes.map((n) => h("tr", { "data-node": n.id, "data-state": n.state },
      h("td", { class: "mono" }, n.id), h("td", {}, badge(n.state)), h("td", { class: "num" }, n.attempts),
      h("td", {}, timeCell(n.started_at)), h("td", {}, timeCell(n.finished_at)),
      h("td", {}, n.error ? `${n.error.type || ""}: ${n.error.message || ""}` : ""))));
    comps.replaceChildren(run.compensations.length
      ? h("ol", { class: "comps" }, ...run.compensations.map((c) => h("li", { "data-node": c.node },
        h("span", { class: "mono" }, c.node), " ", badge(c.state), " ", timeCell(c.started_at),
        c.error ? h("span", { class: "error" }, ` ${c.error.message || ""}`) : "")))
      : h("p", { class: "muted" }, run.state === "COMPENSATED" ? "Nothing needed undoing." : "None ran."));
    return run;
  };
  const load = async () => render(await get(`/v1/runs/${encodeURIComponent(id)}`));
  let stopPoll = null;
  const poll = () => {
    if (stopPoll) stopPoll();
    stopPoll = every(RUN_REFRESH_MS, async () => { if (TERMINAL.has((await load()).state)) stopPoll(); });
  };
  load().then((run) => { if (!TERMINAL.has(run.state)) poll(); }).catch((err) => head.replaceChildren(errorBox(err)));
}

// -- dead letters (GET /v1/dead-letters, POST /v1/dead-letters/redrive {ids?}) -----------------------
const dlFilter = { status: "dead" };

function viewDeadLetters() {
  const box = h("div", { id: "dead-letters" });
  const info = h("p", { class: "muted", "aria-live": "polite", id: "dl-info" });
  const status = h("select", { id: "dl-status" },
    ...[["dead", "waiting (dead)"], ["redriving", "redriving"], ["redriven", "redriven"], ["", "all"]]
      .map(([v, t]) => h("option", { value: v, selected: dlFilter.status === v }, t)));
  main().replaceChildren(h("h1", {}, "Dead letters"),
    h("div", { class: "filters" }, h("div", {}, h("label", { for: "dl-status" }, "Status"), status)), box, info);
  const load = async () => {
    let page;
    try {
      page = await get("/v1/dead-letters", { limit: 100, status: dlFilter.status });
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        box.replaceChildren(notAvailable("Dead letters are"));
        return false;
      }
      throw err;
    }
    const items = page.items || [];
    const checks = [];
    const rows = items.map((d) => {
      const check = h("input", { type: "checkbox", value: d.task_id, "aria-label": `Select ${d.task_id}`, disabled: d.status === "redriven" });
      checks.push(check);
      return h("tr", { "data-task-id": d.task_id, "data-status": d.status },
        h("td", {}, check),
        h("td", {}, h("a", { href: `#/tasks/${encodeURIComponent(d.task_id)}`, class: "mono" }, d.task_id)),
        h("td", {}, h("span", { class: `badge st-dl-${d.status}` }, d.status)),
        h("td", {}, d.target_type || ""),
        h("td", { class: "num" }, d.attempts ?? ""),
        h("td", {}, d.reason || (d.error && d.error.message) || ""),
        h("td", {}, timeCell(d.dead_at)),
        h("td", {}, d.redriven_as
          ? h("a", { href: `#/tasks/${encodeURIComponent(d.redriven_as)}`, class: "mono redriven-as" }, d.redriven_as) : "—"));
    });
    const redrive = async (ids) => {
      try {
        const out = await post("/v1/dead-letters/redrive", ids ? { ids } : {});
        const results = (out && out.results) || [];
        const ok = results.filter((r) => r.redriven_as).length;
        const failed = results.filter((r) => r.error);
        toast(`Redriven: ${ok}` + (failed.length ? `; ${failed.length} refused (${failed[0].error.message})` : ""), failed.length ? "bad" : "info");
        await load();
      } catch (err) {
        toast(err.message, "bad");
      }
    };
    const waiting = items.some((d) => d.status !== "redriven");
    const chosen = h("button", { type: "button", class: "primary", disabled: !waiting }, "Redrive selected");
    const all = h("button", { type: "button", disabled: !waiting }, "Redrive all");
    chosen.addEventListener("click", () => {
      const ids = checks.filter((c) => c.checked).map((c) => c.value);
      if (!ids.length) return toast("Select at least one dead letter.", "bad");
      redrive(ids);
    });
    all.addEventListener("click", () => redrive(null));
    // Keep the ticks across a refresh.
    const ticked = new Set([...box.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value));
    checks.forEach((c) => { if (ticked.has(c.value)) c.checked = true; });
    box.replaceChildren(h("div", { class: "actions left" }, chosen, all),
      h("table", { class: "grid", id: "dead-letters-table" }, h("caption", { class: "sr-only" }, "Dead letters"),
        h("thead", {}, h("tr", {}, ...["", "Failed task", "Status", "Target", "Attempts", "Reason", "Dead since", "Redriven as"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No dead letters."))]))));
    info.textContent = `${items.length} shown · refreshed ${fmtTime(new Date().toISOString()).slice(11)}`;
    return true;
  };
  status.addEventListener("change", () => { dlFilter.status = status.value; load().catch((err) => box.replaceChildren(errorBox(err))); });
  load().then((ok) => { if (ok) every(5000, load); }).catch((err) => box.replaceChildren(errorBox(err)));
}

// -- router -----------------------------------------------------------------------------------------
const ROUTES = [
  [/^#\/tasks\/(.+)$/, (m) => viewTask(decodeURIComponent(m[1])), "tasks"],
  [/^#\/tasks$/, viewTasks, "tasks"],
  [/^#\/schedules$/, viewSchedules, "schedules"],
  [/^#\/workflows\/(.+)$/, (m) => viewWorkflow(decodeURIComponent(m[1])), "workflows"],
  [/^#\/workflows$/, viewWorkflows, "workflows"],
  [/^#\/runs\/(.+)$/, (m) => viewRun(decodeURIComponent(m[1])), "workflows"],
  [/^#\/dead-letters$/, viewDeadLetters, "dead-letters"],
];

function route() {
  stopTimers();
  const signedIn = Boolean(apiKey());
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("session").hidden = !signedIn;
  if (!signedIn) {
    if (statsStop) { statsStop(); statsStop = null; }
    document.getElementById("stats").hidden = true;
    document.title = "Sign in · taskplane";
    return viewSignIn();
  }
  startStats();
  const hash = location.hash || "#/tasks";
  for (const [re, view, section] of ROUTES) {
    const m = hash.match(re);
    if (m) {
      document.querySelectorAll("#nav a").forEach((a) => {
        if (a.dataset.section === section) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      });
      document.title = `${section.replace("-", " ")} · taskplane`;
      view(m);
      main().focus({ preventScroll: true });
      return;
    }
  }
  location.hash = "#/tasks";
}

document.getElementById("signout").addEventListener("click", () => {
  signOut();
  location.hash = "#/signin";
  route();
});
window.addEventListener("hashchange", route);
route();
