// The LOTUS web UI: chat with streamed replies and tool cards, approvals, the
// live event stream, modules, memory search, activity charts and the module
// dependency graph. Plain browser JavaScript; everything comes from the same
// daemon through its API (the token travels as a bearer header, and as a
// WebSocket subprotocol where browsers cannot set headers).
"use strict";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
};

// ---------------------------------------------------------------- token, API

function takeTokenFromUrl() {
  const match = location.hash.match(/token=([0-9A-Za-z]+)/);
  if (match) {
    localStorage.setItem("lotus.token", match[1]);
    history.replaceState(null, "", location.pathname);
  }
  return localStorage.getItem("lotus.token") || "";
}
let token = takeTokenFromUrl();

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = "status " + (kind || "");
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (response.status === 401) showLogin();
  if (!response.ok && response.status !== 202) {
    throw new Error((payload && payload.error) || response.status + " " + response.statusText);
  }
  return payload;
}

function eventSocket(pattern, onEvent, onClose) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/api/events?pattern=${encodeURIComponent(pattern)}`;
  const socket = new WebSocket(url, ["lotus.events", "lotus.token." + token]);
  socket.onmessage = (message) => {
    try { onEvent(JSON.parse(message.data)); } catch (e) { console.error(e); }
  };
  socket.onclose = (e) => { if (onClose) onClose(e); };
  return socket;
}

function showLogin() {
  $("login").hidden = false;
  setStatus("no token", "bad");
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("login-token").value.trim();
  localStorage.setItem("lotus.token", token);
  $("login").hidden = true;
  start();
});

// ---------------------------------------------------------------- tabs

const tabHooks = {};
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b === button);
    for (const section of document.querySelectorAll("main .tab")) {
      section.hidden = section.id !== "tab-" + button.dataset.tab;
    }
    if (tabHooks[button.dataset.tab]) tabHooks[button.dataset.tab]();
  });
}

// ---------------------------------------------------------------- chat

// While a message is being sent, the task's first events can arrive before
// the API says which trace they belong to: they wait in `early`. `mine` holds
// every task this page started: the three sockets are not ordered with one
// another, so a task's last display can arrive after its task_complete.
const chat = {
  task: null, sending: false, early: [], mine: new Set(), bubble: null,
  cards: new Map(), approvals: new Map(), sockets: [],
};

function conversationId() {
  let id = localStorage.getItem("lotus.conversation");
  if (!id) {
    id = "web-" + Math.random().toString(36).slice(2, 10);
    localStorage.setItem("lotus.conversation", id);
  }
  return id;
}
$("conversation").value = conversationId();
$("conversation").addEventListener("change", () => {
  localStorage.setItem("lotus.conversation", $("conversation").value.trim());
  loadHistory();
});
$("new-conversation").addEventListener("click", () => {
  localStorage.removeItem("lotus.conversation");
  $("conversation").value = conversationId();
  $("transcript").replaceChildren();
});

function addToTranscript(node) {
  const transcript = $("transcript");
  transcript.append(node);
  transcript.scrollTop = transcript.scrollHeight;
  return node;
}

function bubble(kind, text) {
  return addToTranscript(el("div", { class: "bubble " + kind, text }));
}

function pretty(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

// Models see `module__tool` (their APIs allow no dots); people read `module.tool`.
function toolTitle(name) {
  return (name || "tool").replace("__", ".");
}

function toolCard(data) {
  const card = el("div", { class: "tool-card", "data-call": data.call_id || "" },
    el("div", { class: "name", text: "⚙ " + toolTitle(data.tool) }),
    el("pre", { class: "arguments", text: pretty(data.arguments || {}) }),
    el("pre", { class: "result muted", text: "running…" }));
  chat.cards.set(data.call_id, card);
  return addToTranscript(card);
}

function approvalCard(request) {
  let card = chat.cards.get(request.call_id);
  if (!card) card = toolCard({ tool: request.tool, arguments: request.arguments, call_id: request.call_id });
  const box = el("div", { class: "approval", "data-approval": request.approval_id },
    el("span", { text: `${toolTitle(request.tool)} needs your approval (${request.risk} risk${request.because ? ": " + request.because : ""})` }),
    el("button", { class: "approve", type: "button", text: "Approve", onclick: () => answerApproval(request.approval_id, true) }),
    el("button", { class: "deny", type: "button", text: "Deny", onclick: () => answerApproval(request.approval_id, false) }));
  card.append(box);
  chat.approvals.set(request.approval_id, box);
}

async function answerApproval(id, approved) {
  const box = chat.approvals.get(id);
  if (box) for (const b of box.querySelectorAll("button")) b.disabled = true;
  try {
    await api("POST", `/api/approvals/${encodeURIComponent(id)}`, { approved });
    if (box) box.replaceChildren(el("span", { class: "muted", text: approved ? "approved" : "denied" }));
  } catch (e) {
    if (box) box.replaceChildren(el("span", { class: "muted", text: "could not answer: " + e.message }));
  }
}

function onChatEvent(event) {
  const data = event.data || {};
  const trace = (event.metadata && event.metadata.trace_id) || data.task_id || data.trace_id;
  if (chat.sending) { chat.early.push(event); return; }
  if (!chat.mine.has(trace)) return;
  if (event.channel === "action.approval_request") return approvalCard(data);
  if (event.channel === "perception.approval_response") {
    const box = chat.approvals.get(data.approval_id);
    if (box && box.querySelector("button")) {
      box.replaceChildren(el("span", { class: "muted", text: data.approved ? "approved" : "denied" }));
    }
    return;
  }
  if (event.channel === "cognition.task_complete") return trace === chat.task ? finishTask() : undefined;
  if (event.channel !== "action.display") return;
  switch (data.kind) {
    case "delta":
      if (!chat.bubble) chat.bubble = bubble("assistant", "");
      chat.bubble.textContent += data.text;
      break;
    case "message":
      if (!chat.bubble) chat.bubble = bubble("assistant", "");
      chat.bubble.textContent = data.text;
      chat.bubble = null;
      break;
    case "thought":
      if (chat.bubble) { chat.bubble.remove(); chat.bubble = null; }
      if (data.text) bubble("thought", data.text);
      break;
    case "tool_call":
      if (chat.bubble && !chat.bubble.textContent) chat.bubble.remove();
      chat.bubble = null;
      if (!chat.cards.has(data.call_id)) toolCard(data);
      break;
    case "tool_result": {
      const card = chat.cards.get(data.call_id) || toolCard(data);
      const result = card.querySelector(".result");
      result.textContent = data.text;
      result.classList.remove("muted");
      card.classList.add(data.ok ? "done" : "failed");
      break;
    }
    case "error":
    case "cancelled":
      bubble("error", data.text);
      break;
  }
}

// The task's last displays may still be on their way (another socket): the
// answer bubble is let go by its final "message", or by the next request.
function finishTask() {
  chat.task = null;
  $("chat-send").disabled = false;
  $("chat-cancel").disabled = true;
}

$("chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || chat.task) return;
  $("chat-input").value = "";
  bubble("user", text);
  chat.bubble = null;
  $("chat-send").disabled = true;
  chat.sending = true;
  try {
    const accepted = await api("POST", `/api/conversations/${encodeURIComponent($("conversation").value)}/messages`,
      { text, wait: false });
    chat.task = accepted.trace_id;
    chat.mine.add(chat.task);
    $("chat-cancel").disabled = false;
  } catch (error) {
    bubble("error", error.message);
    finishTask();
  } finally {
    chat.sending = false;
    const early = chat.early.splice(0);
    for (const event of early) onChatEvent(event);
  }
});
$("chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("chat-form").requestSubmit();
  }
});
$("chat-cancel").addEventListener("click", () => {
  if (chat.task) api("POST", "/api/events", { channel: "cognition.cancel", data: { task_id: chat.task } });
});

async function loadHistory() {
  $("transcript").replaceChildren();
  try {
    const history = await api("GET", `/api/conversations/${encodeURIComponent($("conversation").value)}`);
    for (const message of history.messages || []) {
      if (message.role === "user") bubble("user", message.content || message.text || "");
      else if (message.role === "assistant" && (message.content || message.text)) {
        bubble("assistant", message.content || message.text);
      }
    }
  } catch (_) { /* a new conversation, or no reasoning module */ }
}

function connectChat() {
  for (const s of chat.sockets) s.close();
  chat.sockets = ["action.**", "cognition.task_complete", "perception.approval_response"].map(
    (pattern) => eventSocket(pattern, onChatEvent));
}

// ---------------------------------------------------------------- events

const events = { socket: null, paused: false, count: 0, max: 500 };

function connectEvents() {
  if (events.socket) events.socket.close();
  const pattern = $("events-pattern").value.trim() || "**";
  events.socket = eventSocket(pattern, (event) => {
    if (events.paused) return;
    events.count++;
    const body = $("events-body");
    const time = new Date((event.timestamp || 0) * 1000).toLocaleTimeString();
    body.prepend(el("tr", {},
      el("td", { text: time }), el("td", { text: event.channel }),
      el("td", { text: event.source }), el("td", { class: "data", text: JSON.stringify(event.data) })));
    while (body.rows.length > events.max) body.deleteRow(-1);
    $("events-count").textContent = `${events.count} events`;
  }, (e) => {
    if (e.code === 1008) $("events-count").textContent = "dropped by the server: " + e.reason;
  });
}
$("events-form").addEventListener("submit", (e) => { e.preventDefault(); connectEvents(); });
$("events-pause").addEventListener("click", () => {
  events.paused = !events.paused;
  $("events-pause").textContent = events.paused ? "Resume" : "Pause";
});
$("events-clear").addEventListener("click", () => { $("events-body").replaceChildren(); events.count = 0; });
tabHooks.events = () => { if (!events.socket) connectEvents(); };

// ---------------------------------------------------------------- modules

async function moduleAction(name, action) {
  $("modules-message").textContent = `${action} ${name}…`;
  try {
    const result = await api("POST", `/api/modules/${encodeURIComponent(name)}/${action}`);
    $("modules-message").textContent = `${name}: ${result.done}`;
  } catch (e) {
    $("modules-message").textContent = `${name}: ${e.message}`;
  }
  refreshModules();
}

async function refreshModules() {
  const list = await api("GET", "/api/modules");
  const body = $("modules-body");
  body.replaceChildren();
  for (const m of list.modules) {
    const h = m.health || {};
    const latency = h.latency_us || {};
    body.append(el("tr", { "data-module": m.name },
      el("td", { text: m.name }), el("td", { text: m.version }), el("td", { text: m.type }),
      el("td", { class: "state-" + m.state, text: m.state + (m.error ? ": " + m.error : "") }),
      el("td", { text: h.events_handled ?? "" }),
      el("td", { text: latency.p50 !== undefined ? latency.p50.toFixed(1) : "" }),
      el("td", { text: latency.p99 !== undefined ? latency.p99.toFixed(1) : "" }),
      el("td", { text: h.errors ?? "" }), el("td", { text: h.restarts ?? "" }),
      el("td", {},
        el("button", { type: "button", class: "reload", text: "Reload", onclick: () => moduleAction(m.name, "reload") }),
        " ",
        el("button", { type: "button", class: "unload", text: "Unload", onclick: () => moduleAction(m.name, "unload") }))));
  }
  return list.modules;
}
$("load-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("load-name").value.trim();
  try {
    await api("POST", "/api/modules", { name });
    $("modules-message").textContent = `${name}: loaded`;
  } catch (error) {
    $("modules-message").textContent = `${name}: ${error.message}`;
  }
  refreshModules();
});
tabHooks.modules = refreshModules;

// ---------------------------------------------------------------- memory

$("memory-search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const list = $("memory-results");
  list.replaceChildren();
  try {
    const result = await api("POST", "/api/memory/search", { query: $("memory-query").value, limit: 20 });
    const memories = result.results;
    if (!memories.length) list.append(el("li", { class: "muted", text: "nothing found" }));
    for (const m of memories) {
      list.append(el("li", {},
        el("div", { text: m.content }),
        el("div", { class: "muted", text: `${m.type} · score ${m.score.toFixed(3)} · ${m.id}` })));
    }
  } catch (error) {
    list.append(el("li", { class: "muted", text: error.message }));
  }
});
$("memory-add-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const result = await api("POST", "/api/memory", { content: $("memory-content").value, type: $("memory-type").value });
    $("memory-message").textContent = "remembered " + result.memory.id;
    $("memory-content").value = "";
  } catch (error) {
    $("memory-message").textContent = error.message;
  }
});

// ---------------------------------------------------------------- activity

const activity = { last: null, rates: [], latency: {}, points: 120, timer: null };
const palette = ["#8a3ffc", "#1f7a3d", "#b3261e", "#0072c3", "#b28600", "#ee538b", "#007d79", "#6f6f6f"];

function drawSeries(canvas, seriesList, unit) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 40;
  ctx.clearRect(0, 0, w, h);
  let max = 1;
  for (const s of seriesList) for (const v of s.values) max = Math.max(max, v);
  ctx.strokeStyle = "#dcdcd8";
  ctx.fillStyle = "#6b6b70";
  ctx.font = "12px system-ui";
  for (let i = 0; i <= 4; i++) {
    const y = h - pad / 2 - (i / 4) * (h - pad);
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 5, y); ctx.stroke();
    ctx.fillText(((max * i) / 4).toFixed(max < 10 ? 1 : 0), 2, y + 4);
  }
  ctx.fillText(unit, pad, 12);
  // The newest sample sits at the right edge; older ones scroll left.
  const xOf = (i, n) => w - 5 - ((n - 1 - i) / (activity.points - 1)) * (w - pad - 5);
  const yOf = (v) => h - pad / 2 - (v / max) * (h - pad);
  seriesList.forEach((s) => {
    const n = s.values.length;
    if (!n) return;
    ctx.strokeStyle = ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      if (i === 0) ctx.moveTo(xOf(i, n), yOf(v)); else ctx.lineTo(xOf(i, n), yOf(v));
    });
    ctx.stroke();
    // A dot on the latest value, so even the first sample shows.
    ctx.beginPath();
    ctx.arc(xOf(n - 1, n), yOf(s.values[n - 1]), 3, 0, 2 * Math.PI);
    ctx.fill();
  });
}

async function sampleActivity() {
  let health;
  try { health = await api("GET", "/health"); } catch (_) { return; }
  const now = performance.now();
  if (activity.last) {
    const seconds = (now - activity.last.time) / 1000;
    const rate = Math.max(0, (health.bus.published - activity.last.published) / seconds);
    activity.rates.push(rate);
    $("rate-now").textContent = `now ${rate.toFixed(rate < 10 ? 1 : 0)} events/s`;
    if (activity.rates.length > activity.points) activity.rates.shift();
  }
  activity.last = { time: now, published: health.bus.published };
  for (const [name, m] of Object.entries(health.modules || {})) {
    const values = activity.latency[name] || (activity.latency[name] = []);
    values.push((m.latency_us && m.latency_us.p99) || 0);
    if (values.length > activity.points) values.shift();
  }
  drawSeries($("rate-chart"), [{ color: palette[0], values: activity.rates }], "events/s");
  const names = Object.keys(activity.latency).sort();
  drawSeries($("latency-chart"), names.map((n, i) => ({ color: palette[i % palette.length], values: activity.latency[n] })), "µs");
  $("latency-legend").replaceChildren(...names.map((n, i) => {
    const span = el("span", { text: n });
    span.style.setProperty("--swatch", palette[i % palette.length]);
    return span;
  }));
}
tabHooks.activity = () => {
  if (!activity.timer) { sampleActivity(); activity.timer = setInterval(sampleActivity, 1000); }
};

// ---------------------------------------------------------------- graph

async function drawGraph() {
  const { modules } = await api("GET", "/api/modules");
  const byName = new Map(modules.map((m) => [m.name, m]));
  const depth = new Map();
  const depthOf = (name, seen = new Set()) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.has(name)) return 0;
    seen.add(name);
    const m = byName.get(name);
    const d = m && m.dependencies.length
      ? 1 + Math.max(...m.dependencies.map((dep) => depthOf(dep, seen))) : 0;
    depth.set(name, d);
    return d;
  };
  modules.forEach((m) => depthOf(m.name));
  const layers = [];
  for (const m of modules) (layers[depth.get(m.name)] ||= []).push(m);
  const boxW = 150, boxH = 34, gapX = 40, gapY = 70;
  const width = Math.max(...layers.map((l) => l.length)) * (boxW + gapX) + gapX;
  const height = layers.length * (boxH + gapY) + gapY / 2;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const defs = document.createElementNS(ns, "defs");
  defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#6b6b70"/></marker>';
  svg.append(defs);
  const position = new Map();
  layers.forEach((layer, row) => layer.forEach((m, col) => {
    position.set(m.name, { x: gapX + col * (boxW + gapX), y: gapY / 2 + (layers.length - 1 - row) * (boxH + gapY) });
  }));
  for (const m of modules) {
    for (const dep of m.dependencies) {
      const a = position.get(m.name), b = position.get(dep);
      if (!a || !b) continue;
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", a.x + boxW / 2); line.setAttribute("y1", a.y + boxH);
      line.setAttribute("x2", b.x + boxW / 2); line.setAttribute("y2", b.y);
      line.setAttribute("marker-end", "url(#arrow)");
      line.setAttribute("data-from", m.name);
      line.setAttribute("data-to", dep);
      svg.append(line);
    }
  }
  for (const m of modules) {
    const p = position.get(m.name);
    const g = document.createElementNS(ns, "g");
    g.setAttribute("class", "node" + (m.state === "running" ? "" : " failed"));
    g.setAttribute("data-module", m.name);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", p.x); rect.setAttribute("y", p.y);
    rect.setAttribute("width", boxW); rect.setAttribute("height", boxH); rect.setAttribute("rx", 6);
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", p.x + boxW / 2); text.setAttribute("y", p.y + boxH / 2 + 4);
    text.setAttribute("text-anchor", "middle");
    text.textContent = m.name;
    g.append(rect, text);
    svg.append(g);
  }
  $("graph").replaceChildren(svg);
}
tabHooks.graph = drawGraph;

// ---------------------------------------------------------------- start

async function start() {
  if (!token) return showLogin();
  try {
    const health = await api("GET", "/api/modules");
    setStatus(`connected · ${health.modules.length} modules`, "ok");
  } catch (e) {
    setStatus(e.message, "bad");
    return;
  }
  connectChat();
  loadHistory();
}
start();
