// The job card and the dashboard: one widget model each, drawn from the
// snapshot the kernel sends ("snap" / "view"). No state lives here.

// A state's colour: theme.css defines it from JupyterLab's theme variables.
const stateColour = (state) => `var(--nbx-${state}, #555)`;

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function duration(s) {
  if (s === null || s === undefined) return "";
  s = Math.max(0, s);
  if (s < 10) return s.toFixed(1) + "s";
  if (s < 3600) {
    const m = Math.floor(s / 60), r = Math.floor(s % 60);
    return m ? `${m}:${String(r).padStart(2, "0")}` : `${r}s`;
  }
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = Math.floor(s % 60);
  return `${hh}:${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}`;
}

// Numbers as the kernel's text renderers write them (notebook_ext.core._text.format_number):
// whole numbers in full, 1,000 and more rounded to whole, else 4 significant digits.
export function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
  if (Math.abs(v) >= 1e15) return v.toExponential(3).replace(/e([+-])(\d)$/, "e$10$2");
  if (Number.isInteger(v) || Math.abs(v) >= 1000) return String(Math.round(v));
  if (Math.abs(v) < 1e-4) {
    const [m, x] = v.toExponential(3).split("e");
    const n = Number(x);
    return `${m.replace(/\.?0+$/, "")}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
  }
  return String(Number(v.toPrecision(4)));
}

// Where each point of a curve is drawn in a W×H box. A flat series is drawn
// across the middle (not along the bottom, where it would read as zero).
export function curvePoints(points, W, H, pad = 2) {
  const pts = (points || []).filter((p) => p[1] !== null);
  if (pts.length < 2) return [];
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const sy = (y) => (y1 === y0 ? H / 2 : H - pad - ((y - y0) / (y1 - y0)) * (H - 2 * pad));
  return pts.map((p) => [sx(p[0]), sy(p[1])]);
}

function sparkline(curve) {
  const W = 180, H = 40;
  const xy = curvePoints(curve && curve.points, W, H);
  if (!xy.length) return null;
  const ys = curve.points.filter((p) => p[1] !== null).map((p) => p[1]);
  const d = xy.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H);
  svg.setAttribute("class", "nbx-curve");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d); path.setAttribute("fill", "none");
  path.style.stroke = "var(--nbx-curve, #1f6feb)"; path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  const wrap = h("span", { class: "nbx-curve-wrap", title: `${curve.name}: ${num(ys[0])} → ${num(ys[ys.length - 1])}` },
    svg, h("span", { class: "nbx-curve-label" }, `${curve.name} ${num(ys[ys.length - 1])}`));
  return wrap;
}

function badge(state) {
  return h("span", { class: `nbx-state nbx-state-${state}` }, state);
}

// One rich output of the job (display(), a figure), in the mime type the kernel chose.
// HTML takes the classes JupyterLab puts on a cell's text/html output, so
// its styles (a DataFrame's table, in either theme) are the front end's own.
export function drawDisplay(d) {
  const html = d.mime === "text/html";
  const box = h("div", { class: html ? "nbx-display jp-RenderedHTMLCommon jp-RenderedHTML" : "nbx-display", "data-mime": d.mime });
  if (html || d.mime === "image/svg+xml") box.innerHTML = d.data;
  else if (d.mime === "image/png" || d.mime === "image/jpeg") {
    const md = d.metadata || {};
    box.append(h("img", { src: `data:${d.mime};base64,${d.data}`, width: md.width, height: md.height }));
  } else box.append(h("pre", {}, d.data));
  return box;
}

export function drawCard(el, s, send, openDetails, displays) {
  const running = s.state === "running";
  const active = ["pending", "queued", "running"].includes(s.state);
  const frac = s.fraction;
  const bar = h("div", { class: "nbx-bar" + (frac === null && running ? " nbx-bar-indeterminate" : "") },
    h("div", { class: "nbx-bar-fill", style: `width:${frac === null ? (s.state === "done" ? 100 : 0) : (frac * 100).toFixed(1)}%;background:${stateColour(s.state)}` }));
  let progText = "";
  if (s.total) progText = `${num(s.done)}/${num(s.total)} (${(100 * (frac || 0)).toFixed(0)}%)`;
  else if (s.done) progText = `${num(s.done)} ${s.unit || "steps"}`;
  const facts = h("div", { class: "nbx-facts" },
    h("span", { class: "nbx-progress-text" }, progText),
    h("span", { class: "nbx-elapsed", "data-elapsed": s.elapsed ?? "" }, s.elapsed !== null ? `elapsed ${duration(s.elapsed)}` : ""),
    running && s.eta !== null ? h("span", { class: "nbx-eta" }, `ETA ${duration(s.eta)}`) : null,
    // a serving card says its rate over the last seconds below, not this average
    running && s.rate && !s.serving ? h("span", { class: "nbx-rate" }, `${num(s.rate)}/s`) : null,
    s.attempts > 1 ? h("span", { class: "nbx-attempts" }, `attempt ${s.attempts}/${s.retries + 1}`) : null,
    s.priority ? h("span", { class: "nbx-priority" }, `priority ${s.priority}`) : null,
    h("span", { class: "nbx-executor" }, s.executor),
  );
  const metrics = Object.entries(s.metrics || {});
  const buttons = h("div", { class: "nbx-buttons" },
    active ? h("button", { class: "nbx-cancel", disabled: s.cancel_requested ? "" : null, onclick: () => send("cancel") },
      s.cancel_requested ? "Cancelling…" : "Cancel") : null,
    active && s.can_stop ? h("button", { class: "nbx-stop", onclick: () => send("stop") },
      s.stop_requested ? "Stopping…" : "Stop and keep") : null,
    !active && s.state !== "done" ? h("button", { class: "nbx-retry", onclick: () => send("retry") }, "Retry") : null,
  );
  const header = h("div", { class: "nbx-header" },
    h("span", { class: "nbx-name" }, s.name), badge(s.state),
    s.kind !== "job" ? h("span", { class: "nbx-kind" }, s.kind) : null,
    s.stopped_early ? h("span", { class: "nbx-note" }, "stopped early, model kept") : null,
    s.resumed_note ? h("span", { class: "nbx-note nbx-resumed" }, s.resumed_note) : null,
    s.abandoned ? h("span", { class: "nbx-note" }, "thread abandoned") : null,
    s.dashboard_link ? h("a", { class: "nbx-link", href: s.dashboard_link, target: "_blank" }, "Dask dashboard") : null,
    buttons);
  const body = [header, bar, facts];
  if (s.message) body.push(h("div", { class: "nbx-message" }, s.message));
  if (metrics.length || s.curve) {
    body.push(h("div", { class: "nbx-metrics-row" },
      h("span", { class: "nbx-metrics" }, metrics.map(([k, v]) => `${k}=${num(v)}`).join("  ")),
      sparkline(s.curve)));
  }
  if (s.children_text) body.push(h("div", { class: "nbx-children" }, s.children_text));
  else if (s.children) {  // a card saved before children_text: the same words from its counts
    const c = s.children, states = Object.keys(c).filter((k) => k !== "total" && c[k]);
    const noun = c.total === 1 ? "sub-job" : "sub-jobs", word = (k) => k.replace("_", " ");
    body.push(h("div", { class: "nbx-children" }, states.length === 1 ? `${c.total} ${noun} ${word(states[0])}`
      : `${c.total} ${noun}: ${states.map((k) => `${c[k]} ${word(k)}`).join(", ")}`));
  }
  if (s.leaderboard) {
    const rows = s.leaderboard.map((r) => h("tr", {},
      h("td", {}, r.rank ?? ""), h("td", {}, num(r.mean)), h("td", {}, r.std === null ? "" : `± ${num(r.std)}`),
      h("td", { class: "nbx-params" }, r.params), h("td", {}, r.state)));
    body.push(h("table", { class: "nbx-leaderboard" },
      h("thead", {}, h("tr", {}, ...["rank", "mean score", "std", "params", "state"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...rows)));
    if (s.leaderboard_note) body.push(h("div", { class: "nbx-leaderboard-note" }, s.leaderboard_note));
  }
  if (s.stages) {
    // The bottleneck at a glance: the stage whose workers are all busy while items queue before it.
    const rows = s.stages.map((st) => h("tr", { class: st.in_flight >= st.workers && st.queued > 0 ? "nbx-busy" : "" },
      h("td", {}, st.name), h("td", {}, st.executor), h("td", {}, num(st.done)), h("td", {}, `${num(st.rate)}/s`),
      h("td", {}, `${st.in_flight}/${st.workers}`), h("td", {}, `${st.queued}/${st.queue_size}`),
      h("td", {}, st.failed ? String(st.failed) : "")));
    body.push(h("table", { class: "nbx-leaderboard nbx-stages" },
      h("thead", {}, h("tr", {}, ...["stage", "runs in", "done", "rate", "in flight", "queued", "failed"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...rows)));
  }
  if (s.serving) {
    const v = s.serving;
    body.push(h("div", { class: "nbx-serving" },
      `${num(v.requests_per_s)} req/s (last ${num(v.rate_window_s ?? 5)} s) · batch ${num(v.mean_batch)} · p50 ${num(v.p50_ms)} ms · p99 ${num(v.p99_ms)} ms · ${num(v.requests)} requests in all`));
  }
  if (s.failed_count) {
    body.push(h("details", { class: "nbx-failed" },
      h("summary", {}, `${s.failed_count} failed item(s)`),
      h("pre", {}, s.failed_items.map((f) => `#${f.index} ${f.item}${f.stage ? ` (${f.stage})` : ""}: ${f.error}`).join("\n"))));
  }
  if (s.error && s.state !== "done") body.push(h("div", { class: "nbx-error" }, s.error));
  if (s.cancel_note) body.push(h("div", { class: "nbx-cancel-note" }, s.cancel_note));
  if (s.traceback) {
    const d = h("details", { class: "nbx-traceback-box" }, h("summary", {}, "traceback"), h("pre", { class: "nbx-traceback" }, s.traceback));
    d.open = !!openDetails.traceback;  // collapsed: the error line above says what failed
    d.addEventListener("toggle", () => { openDetails.traceback = d.open; });
    body.push(d);
  }
  if (s.output) {
    const d = h("details", { class: "nbx-output-box" },
      h("summary", {}, `output (${s.output_chars} chars)`), h("pre", { class: "nbx-output" }, s.output));
    d.open = !!openDetails.output;
    d.addEventListener("toggle", () => { openDetails.output = d.open; });
    body.push(d);
  }
  if (displays) body.push(displays);
  el.replaceChildren(...body);
  el.dataset.state = s.state;
}

function tickElapsed(el, s, receivedAt) {
  if (!s || s.state !== "running" || s.elapsed === null) return;
  const span = el.querySelector(".nbx-elapsed");
  if (span) span.textContent = `elapsed ${duration(s.elapsed + (Date.now() - receivedAt) / 1000)}`;
}

function renderCard({ model, el }) {
  const root = h("div", { class: "nbx-card" });
  el.append(root);
  const openDetails = {};
  let receivedAt = Date.now();
  // With the JupyterLab / Notebook 7 extension, Cancel and Stop go through the
  // server to the job ledger's mailbox: a comm message would make the kernel
  // report busy then idle, and the status bar read "Idle" while a cell runs.
  const send = (action) => {
    const ext = globalThis.notebookExt, uid = (model.get("snap") || {}).uid;
    if (ext && uid && (action === "cancel" || action === "stop")) {
      ext.control(uid, action, action === "cancel" ? "cancelled from its card" : "stopped from its card")
        .catch(() => model.send({ action }));
    }
    else model.send({ action });
  };
  el.__nbx = model;  // the extension reads the last state from it should the kernel go
  const displays = h("div", { class: "nbx-displays" });  // redrawn only when they change
  const drawDisplays = () => displays.replaceChildren(...(model.get("displays") || []).map(drawDisplay));
  const draw = () => { receivedAt = Date.now(); drawCard(root, model.get("snap"), send, openDetails, displays); };
  model.on("change:snap", draw);
  model.on("change:displays", drawDisplays);
  drawDisplays();
  draw();
  const timer = setInterval(() => tickElapsed(root, model.get("snap"), receivedAt), 500);
  return () => { clearInterval(timer); model.off("change:snap", draw); model.off("change:displays", drawDisplays); };
}

export function drawDashboard(root, v, model) {
  const send = (msg) => model.send(msg);
  const counts = Object.entries(v.counts || {}).map(([k, n]) =>
    h("span", { class: `nbx-count nbx-count-${k}` }, badge(k), ` ${n}`));
  const sortSel = h("select", { class: "nbx-sort", onchange: (e) => send({ action: "sort", by: e.target.value }) },
    ...["state", "priority", "name", "elapsed", "created"].map((k) => {
      const o = h("option", { value: k }, `sort: ${k}`); if (k === v.sort) o.selected = true; return o;
    }));
  const filterSel = h("select", { class: "nbx-filter", onchange: (e) => send({ action: "filter", state: e.target.value }) },
    ...["all", "active", "pending", "queued", "running", "done", "failed", "cancelled", "timed_out"].map((k) => {
      const o = h("option", { value: k }, `show: ${k}`); if (k === v.filter) o.selected = true; return o;
    }));
  const pager = h("span", { class: "nbx-pager" },
    h("button", { class: "nbx-prev", onclick: () => send({ action: "page", page: v.page - 1 }), disabled: v.page <= 0 ? "" : null }, "‹"),
    ` ${v.first}–${v.last} of ${v.matching} `,
    h("button", { class: "nbx-next", onclick: () => send({ action: "page", page: v.page + 1 }), disabled: v.last >= v.matching ? "" : null }, "›"));
  const rows = (v.rows || []).map((r) => {
    const active = ["pending", "queued", "running"].includes(r.state);
    const frac = r.total ? Math.min(1, r.done / r.total) : null;
    return h("tr", { class: "nbx-row", "data-name": r.name },
      h("td", { class: "nbx-row-name" }, r.name),
      h("td", {}, badge(r.state)),
      h("td", {}, h("div", { class: "nbx-bar nbx-bar-small" },
        h("div", { class: "nbx-bar-fill", style: `width:${frac === null ? (r.state === "done" ? 100 : 0) : (frac * 100).toFixed(0)}%;background:${stateColour(r.state)}` })),
        r.total ? ` ${num(r.done)}/${num(r.total)}` : ""),
      h("td", {}, duration(r.elapsed)),
      h("td", {}, r.priority),
      h("td", {}, r.executor),
      h("td", {}, active
        ? h("button", { class: "nbx-row-cancel", onclick: () => send({ action: "cancel", name: r.name }) }, "Cancel")
        : (r.state !== "done" ? h("button", { class: "nbx-row-retry", onclick: () => send({ action: "retry", name: r.name }) }, "Retry") : "")));
  });
  root.replaceChildren(
    h("div", { class: "nbx-dash-header" },
      h("b", {}, `${v.title || "notebook_ext jobs"} `), h("span", { class: "nbx-dash-total" }, `${v.total} jobs`), " ", ...counts, " ",
      sortSel, filterSel, pager,
      h("button", { class: "nbx-cancel-all", onclick: () => send({ action: "cancel_all" }) }, "Cancel all"),
      v.dashboard_link ? h("a", { class: "nbx-link", href: v.dashboard_link, target: "_blank" }, " Dask dashboard") : null),
    h("table", { class: "nbx-dash-table" },
      h("thead", {}, h("tr", {}, ...["name", "state", "progress", "elapsed", "priority", "executor", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...rows)));
}

function renderDashboard({ model, el }) {
  const root = h("div", { class: "nbx-dashboard" });
  el.append(root);
  el.__nbx = model;
  const draw = () => drawDashboard(root, model.get("view"), model);
  model.on("change:view", draw);
  draw();
  return () => model.off("change:view", draw);
}

function render({ model, el }) {
  return model.get("kind") === "dashboard" ? renderDashboard({ model, el }) : renderCard({ model, el });
}

// A front end that draws widgets has this model: the kernel keeps the card
// a live widget once its job ends (without one, nbclient or papermill, the
// saved output becomes the static card that exports and viewers can show).
// Said again a little later: a page's first messages can queue behind every
// cell that "Run All" has sent (JupyterLab sets up its widget subshell
// meanwhile), while later ones reach the kernel as its cells run.
// With the JupyterLab / Notebook 7 extension the kernel knows without asking
// (the server tells the kernels it starts): no hello, whose kernel messages
// would flip the kernel's status to "Idle" while a cell runs.
function initialize({ model }) {
  if (globalThis.notebookExt) return undefined;
  const hello = () => model.send({ action: "hello" });
  hello();
  const timers = [400, 1500, 4000].map((ms) => setTimeout(hello, ms));
  return () => timers.forEach(clearTimeout);
}

export default { initialize, render };
