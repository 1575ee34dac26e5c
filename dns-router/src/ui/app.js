// The fleet status page. Framework-free; talks only to the router's admin JSON API
// (/api/v1/edges, /api/v1/services, /api/v1/explain, drain/undrain, purge) plus
// /ui/regions.json (region coordinates for the map). Every field is read defensively:
// fields may be added to the API, and a missing one shows as "—".
"use strict";
(() => {
  const POLL_MS = 1000;
  const TOKEN_KEY = "cdn-admin-token";
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  const st = {
    edges: [],
    generation: null,
    regions: new Map(), // name -> {lat, lon}
    regionsAt: 0,
    lastOk: 0,
    lastError: null,
    skewMs: 0, // router clock - browser clock, from the Date header (only when > 2 s off)
    selected: null,
    route: null, // {client: {lat, lon}, chosen: [edge ids]}
    rows: new Map(), // edge id -> {tr, cells, buttons}
    marks: new Map(), // edge id -> svg <g>
    timer: null,
  };

  // ---------- helpers ----------
  const el = (tag, attrs = {}, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") n.className = v;
      else if (k === "text") n.textContent = v;
      else n.setAttribute(k, v);
    }
    for (const k of kids) n.append(k);
    return n;
  };
  const svgEl = (tag, attrs = {}) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    return n;
  };
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const str = (v) =>
    v === null || v === undefined || v === "" ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v);
  const now = () => Date.now() + st.skewMs;
  const ago = (ms) => {
    if (num(ms) === null) return "—";
    const s = Math.max(0, (now() - ms) / 1000);
    if (s < 1) return "just now";
    if (s < 90) return `${s.toFixed(s < 10 ? 1 : 0)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  };
  const clock = (ms) => (num(ms) === null ? "—" : new Date(ms - st.skewMs).toLocaleTimeString());
  const fmtNum = (v, digits = 1) => {
    const n = num(v);
    if (n === null) return "—";
    if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(digits) + " G";
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(digits) + " M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(digits) + " k";
    return Number.isInteger(n) ? String(n) : n.toFixed(digits);
  };
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

  /** The state shown: down beats draining (or disabled: not answered either) beats
   * overloaded beats the probe state. */
  const shownState = (e) => {
    const h = typeof e.state === "string" ? e.state : typeof e.health === "string" ? e.health : "unknown";
    if (h === "down") return "down";
    if (e.draining === true || e.disabled === true) return "draining";
    if (e.overloaded === true) return "overloaded";
    return h === "up" ? "up" : "unknown";
  };
  /** Text for the state: the probe state plus what else holds (never colour alone). */
  const stateText = (e) => {
    const h = typeof e.state === "string" ? e.state : "unknown";
    const extra = [];
    if (e.draining === true) extra.push("draining");
    if (e.overloaded === true) extra.push("overloaded");
    if (e.disabled === true) extra.push("disabled");
    return extra.length ? `${h}, ${extra.join(", ")}` : h;
  };
  const probeText = (e) => {
    const p = e.last_probe;
    if (!p || typeof p !== "object") return "none yet";
    const lat = num(p.latency_ms);
    const res = p.ok === true ? "ok" : str(p.outcome);
    return `${res}${lat === null ? "" : ` ${lat.toFixed(1)} ms`}, ${ago(p.at_ms)}`;
  };
  const reportText = (e) => {
    const at = num(e.last_report_received_ms);
    if (at === null) return "none yet";
    return `${ago(at)}${e.report_stale === true ? " (stale)" : ""}`;
  };
  /** Load vs capacity: [text, utilisation 0..1 or null]. */
  const loadOf = (e) => {
    const r = e.last_report && typeof e.last_report === "object" ? e.last_report : null;
    const u = num(e.utilization);
    if (!r) return ["no report", u];
    const load = r.load || {};
    const cap = r.capacity || {};
    const dims = [
      ["requests_per_sec", "req/s"],
      ["active_connections", "conns"],
      ["egress_bytes_per_sec", "B/s out"],
      ["cpu", "cpu"],
    ];
    const parts = [];
    for (const [k, label] of dims) {
      const l = num(load[k]);
      const c = num(cap[k]);
      if (c !== null) parts.push(`${fmtNum(l)}/${fmtNum(c)} ${label}`);
    }
    if (!parts.length) parts.push(`${fmtNum(num(load.requests_per_sec))} req/s (no capacity set)`);
    return [(u === null ? "" : `${Math.round(u * 100)}%: `) + parts.join(", "), u];
  };
  const addresses = (e) => [...(Array.isArray(e.ipv4) ? e.ipv4 : []), ...(Array.isArray(e.ipv6) ? e.ipv6 : [])];
  const coords = (e) => {
    if (num(e.lat) !== null && num(e.lon) !== null) return { lat: e.lat, lon: e.lon };
    return st.regions.get(e.region) || null;
  };
  const project = ({ lat, lon }) => [lon + 180, 90 - lat];

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers.Authorization = `Bearer ${token()}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
    }
    // A router that hangs must show as unreachable, not as a page that stopped updating.
    const res = await fetch(path, {
      method,
      headers,
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(method === "GET" ? 4000 : 15000),
    });
    const date = Date.parse(res.headers.get("Date") || "");
    if (Number.isFinite(date)) {
      const skew = date - Date.now();
      st.skewMs = Math.abs(skew) > 2000 ? skew : 0;
    }
    let json = null;
    try {
      json = await res.json();
    } catch (_) {
      json = null;
    }
    return { status: res.status, ok: res.ok, json };
  }
  const errText = (r) => {
    const msg = r.json && typeof r.json.error === "string" ? r.json.error : "";
    return `HTTP ${r.status}${msg ? `: ${msg}` : ""}`;
  };

  // ---------- polling ----------
  async function loadRegions() {
    try {
      const r = await api("GET", "/ui/regions.json");
      if (r.ok && r.json && Array.isArray(r.json.regions)) {
        st.regions = new Map();
        for (const g of r.json.regions) {
          if (g && typeof g.name === "string" && num(g.lat) !== null && num(g.lon) !== null) {
            st.regions.set(g.name, { lat: g.lat, lon: g.lon });
          }
        }
        st.regionsAt = Date.now();
      }
    } catch (_) {
      /* the next poll retries */
    }
  }

  async function poll() {
    clearTimeout(st.timer);
    try {
      const r = await api("GET", "/api/v1/edges");
      if (!r.ok || !r.json || !Array.isArray(r.json.edges)) throw new Error(errText(r));
      st.edges = r.json.edges.filter((e) => e && typeof e.id === "string");
      st.generation = r.json.generation ?? r.json.health_generation ?? null;
      st.lastOk = Date.now();
      st.lastError = null;
      const missing = st.edges.some((e) => !coords(e));
      if (Date.now() - st.regionsAt > 60000 || (missing && Date.now() - st.regionsAt > 5000)) await loadRegions();
    } catch (err) {
      st.lastError = err && err.message ? err.message : String(err);
    }
    render();
    if (!document.hidden) st.timer = setTimeout(poll, POLL_MS);
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) clearTimeout(st.timer);
    else poll();
  });

  // ---------- rendering ----------
  function render() {
    const s = $("status");
    if (st.lastError) {
      s.dataset.state = "stale";
      s.textContent = st.lastOk
        ? `Router unreachable (${st.lastError}); data below is ${Math.round((Date.now() - st.lastOk) / 1000)} s old`
        : `Router unreachable (${st.lastError})`;
    } else {
      s.dataset.state = "ok";
      const counts = {};
      for (const e of st.edges) counts[shownState(e)] = (counts[shownState(e)] || 0) + 1;
      const summary = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
      s.textContent = `Live · ${st.edges.length} edges (${summary || "none"}) · health generation ${str(st.generation)} · updated ${new Date(st.lastOk).toLocaleTimeString()}`;
    }
    renderTable();
    renderMap();
    renderDetail();
  }

  const COLS = ["edge", "region", "state", "reason", "since", "probe", "report", "load", "draining", "actions"];
  const LABELS = ["Edge", "Region", "State", "Reason", "Since", "Last probe", "Last report", "Load / capacity", "Draining", "Actions"];

  function sortedEdges() {
    return [...st.edges].sort((a, b) => String(a.region).localeCompare(String(b.region)) || a.id.localeCompare(b.id));
  }

  function renderTable() {
    const tbody = $("edges").tBodies[0];
    const edges = sortedEdges();
    const seen = new Set();
    edges.forEach((e, i) => {
      seen.add(e.id);
      let row = st.rows.get(e.id);
      if (!row) row = makeRow(e.id);
      if (tbody.rows[i] !== row.tr) tbody.insertBefore(row.tr, tbody.rows[i] || null);
      const c = row.cells;
      const state = shownState(e);
      row.tr.dataset.state = state;
      c.edge.firstChild.textContent = e.id;
      c.region.textContent = str(e.region);
      c.state.replaceChildren(el("span", { class: `state ${state}` }, el("span", { class: `dot ${state}`, "aria-hidden": "true" }), stateText(e)));
      c.reason.textContent = str(e.reason);
      c.since.textContent = ago(e.since_ms);
      c.since.title = clock(e.since_ms);
      c.probe.textContent = probeText(e);
      c.report.textContent = reportText(e);
      const [loadText, u] = loadOf(e);
      const bar = el("span", { class: "bar", "aria-hidden": "true" }, el("span", {}));
      if (u !== null) {
        bar.firstChild.style.width = `${Math.min(100, Math.max(0, u * 100))}%`;
        if (u >= 0.9) bar.firstChild.className = "high";
      }
      c.load.replaceChildren(loadText, bar);
      const draining = e.draining === true;
      const why = [];
      if (e.manual_drain === true) why.push("operator");
      if (e.report_draining === true) why.push("edge says so");
      c.draining.textContent = draining ? `yes${why.length ? ` (${why.join(", ")})` : ""}` : "no";
      // Undrain is offered for an operator drain (a drain the edge reports itself ends when
      // the edge says so).
      const manual = typeof e.manual_drain === "boolean" ? e.manual_drain : draining;
      row.drain.hidden = manual;
      row.undrain.hidden = !manual;
      row.tr.classList.toggle("selected", st.selected === e.id);
    });
    for (const [id, row] of st.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        st.rows.delete(id);
      }
    }
  }

  function makeRow(id) {
    const tr = el("tr", { "data-edge": id });
    const cells = {};
    COLS.forEach((k, i) => {
      const td = el(i === 0 ? "th" : "td", { "data-label": LABELS[i], "data-col": k });
      if (i === 0) td.setAttribute("scope", "row");
      if (k === "actions") td.className = "actions";
      cells[k] = td;
      tr.append(td);
    });
    const select = el("button", { type: "button", class: "link", "aria-label": `Show ${id} on the map` }, "");
    select.addEventListener("click", () => selectEdge(id));
    cells.edge.append(select);
    const drain = el("button", { type: "button", class: "danger", "data-action": "drain" }, "Drain");
    const undrain = el("button", { type: "button", "data-action": "undrain" }, "Undrain");
    drain.setAttribute("aria-label", `Drain ${id}`);
    undrain.setAttribute("aria-label", `Undrain ${id}`);
    drain.addEventListener("click", () => drainAction(id, true));
    undrain.addEventListener("click", () => drainAction(id, false));
    cells.actions.append(drain, undrain);
    const row = { tr, cells, drain, undrain };
    st.rows.set(id, row);
    return row;
  }

  function renderMap() {
    const layer = $("map-edges");
    const byRegion = new Map();
    for (const e of sortedEdges()) {
      const k = e.region;
      if (!byRegion.has(k)) byRegion.set(k, []);
      byRegion.get(k).push(e);
    }
    const seen = new Set();
    for (const list of byRegion.values()) {
      list.forEach((e, i) => {
        const c = coords(e);
        if (!c) return;
        seen.add(e.id);
        let [x, y] = project(c);
        if (list.length > 1) {
          const a = (2 * Math.PI * i) / list.length;
          x += 4 * Math.cos(a);
          y += 4 * Math.sin(a);
        }
        let g = st.marks.get(e.id);
        if (!g) {
          g = svgEl("g", { class: "edge", tabindex: "0", role: "button", "data-edge": e.id });
          g.append(svgEl("circle", { class: "load", r: "3.6" }), svgEl("circle", { class: "mark", r: "2.6" }), svgEl("text", { x: "4", y: "1.8" }));
          g.addEventListener("click", () => selectEdge(e.id));
          g.addEventListener("keydown", (ev) => {
            if (ev.key === "Enter" || ev.key === " ") {
              ev.preventDefault();
              selectEdge(e.id);
            }
          });
          g.addEventListener("mouseenter", () => showDetail(e.id));
          g.addEventListener("mouseleave", () => showDetail(st.selected));
          g.addEventListener("focus", () => showDetail(e.id));
          st.marks.set(e.id, g);
          layer.append(g);
        }
        const state = shownState(e);
        const u = num(e.utilization);
        g.setAttribute("transform", `translate(${x.toFixed(2)} ${y.toFixed(2)})`);
        g.setAttribute("aria-label", `${e.id}, ${e.region}: ${stateText(e)}`);
        g.dataset.state = state;
        g.classList.toggle("selected", st.selected === e.id || (st.route && st.route.chosen.includes(e.id)));
        const [ring, mark, text] = g.children;
        ring.setAttribute("class", `load st-${state}`);
        ring.setAttribute("r", (3.4 + 3 * Math.min(1.5, Math.max(0, u ?? 0))).toFixed(2));
        mark.setAttribute("class", `mark st-${state}`);
        text.textContent = `${e.id} ${stateText(e)}`;
      });
    }
    for (const [id, g] of st.marks) {
      if (!seen.has(id)) {
        g.remove();
        st.marks.delete(id);
      }
    }
    renderRoute();
  }

  function renderRoute() {
    const layer = $("map-route");
    layer.replaceChildren();
    const r = st.route;
    if (!r || !r.client) return;
    const [cx, cy] = project(r.client);
    for (const id of r.chosen) {
      const e = st.edges.find((x) => x.id === id);
      const g = st.marks.get(id);
      if (!e || !g) continue;
      const m = /translate\(([-\d.]+) ([-\d.]+)\)/.exec(g.getAttribute("transform") || "");
      if (!m) continue;
      layer.append(svgEl("line", { class: "route", x1: cx, y1: cy, x2: m[1], y2: m[2] }));
    }
    const dot = svgEl("circle", { class: "client", cx, cy, r: "1.4" });
    const t = svgEl("title");
    t.textContent = `client at ${r.client.lat}, ${r.client.lon}`;
    dot.append(t);
    layer.append(dot);
  }

  function selectEdge(id) {
    st.selected = st.selected === id ? null : id;
    render();
  }

  function renderDetail() {
    showDetail(st.selected);
  }

  function showDetail(id) {
    const box = $("map-detail");
    const e = id && st.edges.find((x) => x.id === id);
    if (!e) {
      box.replaceChildren(el("p", {}, "Select an edge on the map or in the table for its details."));
      return;
    }
    const dl = el("dl");
    const add = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
    add("Edge", e.id);
    add("Region", str(e.region));
    add("Address", addresses(e).join(", ") || "—");
    add("State", stateText(e));
    add("Reason", str(e.reason));
    add("Since", `${ago(e.since_ms)} (${clock(e.since_ms)})`);
    add("Last probe", probeText(e));
    if (typeof e.probe_failure === "string") add("Last probe failure", e.probe_failure);
    add("Last report", reportText(e));
    add("Load", loadOf(e)[0]);
    add("Probe URL", str(e.probe_url));
    box.replaceChildren(el("h3", {}, e.id), dl);
  }

  // ---------- confirmation ----------
  function confirmAction(text) {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    return new Promise((resolve) => {
      d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
      d.returnValue = "cancel";
      d.showModal();
      $("confirm-cancel").focus();
    });
  }

  // ---------- actions ----------
  async function drainAction(id, drain) {
    const out = $("action-result");
    const verb = drain ? "drain" : "undrain";
    const ok = await confirmAction(
      drain
        ? `Drain ${id}? New DNS answers stop naming it (clients move to the next nearest edge).`
        : `Undrain ${id}? It becomes eligible for DNS answers again.`,
    );
    if (!ok) {
      out.textContent = `${verb} ${id}: cancelled`;
      return;
    }
    try {
      const r = await api("POST", `/api/v1/edges/${encodeURIComponent(id)}/${verb}`);
      if (r.ok) {
        const e = r.json || {};
        out.replaceChildren(el("span", { class: "ok" }, `${verb} ${id}: done`), ` (router says: state ${str(e.state)}, draining ${e.draining === true ? "yes" : "no"}, reason ${str(e.reason)})`);
      } else {
        out.replaceChildren(el("span", { class: "error" }, `${verb} ${id} failed: ${errText(r)}`));
      }
    } catch (err) {
      out.replaceChildren(el("span", { class: "error" }, `${verb} ${id} failed: ${err.message || err}`));
    }
    poll();
  }

  const lines = (v) => v.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);

  async function purgeAction(ev) {
    ev.preventDefault();
    const out = $("purge-out");
    const body = {
      urls: lines($("pg-urls").value),
      prefixes: lines($("pg-prefixes").value),
      tags: lines($("pg-tags").value),
      soft: $("pg-soft").checked,
    };
    const n = body.urls.length + body.prefixes.length + body.tags.length;
    if (!n) {
      out.replaceChildren(el("p", { class: "error", role: "alert" }, "Give at least one URL, prefix or tag."));
      return;
    }
    const what = [
      body.urls.length && `${body.urls.length} URL(s)`,
      body.prefixes.length && `${body.prefixes.length} prefix(es)`,
      body.tags.length && `${body.tags.length} tag(s)`,
    ].filter(Boolean).join(", ");
    if (!(await confirmAction(`${body.soft ? "Soft-purge" : "Purge"} ${what} on every edge?`))) {
      out.replaceChildren(el("p", {}, "Purge cancelled."));
      return;
    }
    out.replaceChildren(el("p", {}, "Purging…"));
    try {
      const r = await api("POST", "/api/v1/purge", body);
      const results = r.json && Array.isArray(r.json.results) ? r.json.results : [];
      const head = r.ok
        ? el("p", { class: "ok" }, `Purged on ${results.filter((x) => x && x.ok).length} of ${results.length} edges in ${str(r.json && r.json.ms)} ms`)
        : el("p", { class: "error", role: "alert" }, `Purge failed: ${errText(r)}`);
      const tbody = el("tbody");
      for (const x of results) {
        if (!x || typeof x !== "object") continue;
        const res = x.ok === true ? "ok" : x.skipped === true ? "skipped" : "failed";
        tbody.append(
          el("tr", { "data-edge": str(x.edge), "data-result": res },
            el("th", { scope: "row" }, str(x.edge)),
            el("td", {}, el("span", { class: `state ${res === "ok" ? "up" : res === "failed" ? "down" : "unknown"}` }, res)),
            el("td", {}, str(x.status)),
            el("td", {}, str(x.purged)),
            el("td", {}, num(x.ms) === null ? "—" : `${x.ms} ms`),
            el("td", {}, str(x.error))),
        );
      }
      const table = el("table", { id: "purge-results" },
        el("caption", { class: "sr" }, "Purge result per edge"),
        el("thead", {}, el("tr", {}, ...["Edge", "Result", "HTTP status", "Objects purged", "Time", "Error"].map((h) => el("th", { scope: "col" }, h)))),
        tbody);
      out.replaceChildren(head, ...(results.length ? [table] : []));
    } catch (err) {
      out.replaceChildren(el("p", { class: "error", role: "alert" }, `Purge failed: ${err.message || err}`));
    }
  }

  // ---------- explain ----------
  async function explainAction(ev) {
    ev.preventDefault();
    const out = $("explain-out");
    const q = new URLSearchParams();
    q.set("name", $("ex-name").value.trim());
    q.set("type", $("ex-qtype").value);
    const ecs = $("ex-ecs").value.trim();
    const client = $("ex-client").value.trim();
    if (ecs) q.set("ecs", ecs);
    if (client) q.set("client", client);
    out.replaceChildren(el("p", {}, "Asking the router…"));
    let r;
    try {
      r = await api("GET", `/api/v1/explain?${q}`);
    } catch (err) {
      out.replaceChildren(el("p", { class: "error", role: "alert" }, `Explain failed: ${err.message || err}`));
      return;
    }
    if (!r.ok || !r.json) {
      out.replaceChildren(el("p", { class: "error", role: "alert" }, `Explain failed: ${errText(r)}`));
      st.route = null;
      renderMap();
      return;
    }
    const x = r.json;
    const cands = Array.isArray(x.candidates) ? x.candidates.filter((c) => c && typeof c === "object") : [];
    const chosen = cands.filter((c) => c.chosen === true).map((c) => String(c.edge));
    const loc = x.location && typeof x.location === "object" ? x.location : null;
    const dl = el("dl", { class: "explain-summary", id: "explain-summary" });
    const add = (k, v, key) => {
      const dd = el("dd", {}, v);
      if (key) dd.dataset.key = key;
      dl.append(el("dt", {}, k), dd);
    };
    add("Outcome", `${str(x.outcome)}${typeof x.rcode === "string" ? ` (${x.rcode})` : ""}`, "outcome");
    if (x.service) add("Service", str(x.service), "service");
    add("Chosen edges", chosen.join(", ") || "none", "chosen");
    add("Answer", Array.isArray(x.answer) && x.answer.length ? x.answer.join(", ") : "—", "answer");
    add("TTL", x.ttl == null ? "—" : `${x.ttl} s`, "ttl");
    add("ECS", `${str(x.ecs)} → scope /${str(x.ecs_scope)}`, "ecs");
    add("Rule", str(x.rule), "rule");
    if (loc) {
      const where = [loc.region && `region ${loc.region}`, loc.country, loc.continent].filter(Boolean).join(", ");
      add("Client location", `${num(loc.lat) === null ? "—" : loc.lat}, ${num(loc.lon) === null ? "—" : loc.lon}${where ? ` (${where})` : ""}`, "location");
      add("Matched network", `${str(loc.network)} (${str(loc.source)})`, "network");
    }
    add("Located address", str(x.lookup_address), "lookup_address");
    add("Resolver", str(x.client), "client");
    add("Health generation", str(x.health_generation), "generation");
    const tbody = el("tbody");
    cands.forEach((c, i) => {
      const state = c.health === "down" ? "down" : c.draining ? "draining" : c.overloaded ? "overloaded" : c.health === "up" ? "up" : "unknown";
      const tr = el("tr", { "data-edge": str(c.edge), class: c.chosen === true ? "chosen" : "" },
        el("td", {}, String(i + 1)),
        el("th", { scope: "row" }, str(c.edge)),
        el("td", {}, str(c.region)),
        el("td", {}, num(c.distance_km) === null ? "—" : `${c.distance_km.toLocaleString()} km`),
        el("td", {}, el("span", { class: `state ${state}` }, el("span", { class: `dot ${state}`, "aria-hidden": "true" }), stateText({ state: c.health, draining: c.draining, overloaded: c.overloaded }))),
        el("td", {}, c.excluded ? String(c.excluded) : "—"),
        el("td", {}, c.chosen === true ? "chosen" : "no"));
      tbody.append(tr);
    });
    const table = el("table", { id: "explain-candidates" },
      el("caption", { class: "sr" }, "Candidates in rank order"),
      el("thead", {}, el("tr", {}, ...["Rank", "Edge", "Region", "Distance", "State", "Excluded because", "Chosen"].map((h) => el("th", { scope: "col" }, h)))),
      tbody);
    out.replaceChildren(dl, ...(cands.length ? [el("div", { class: "table-wrap" }, table)] : []));
    st.route = loc && num(loc.lat) !== null && num(loc.lon) !== null ? { client: { lat: loc.lat, lon: loc.lon }, chosen } : null;
    renderMap();
  }

  // ---------- token ----------
  function applyToken() {
    document.body.classList.toggle("has-token", token() !== "");
    $("token").value = token() ? "••••••••" : "";
  }

  async function loadServices() {
    try {
      const r = await api("GET", "/api/v1/services");
      const list = r.ok && r.json && Array.isArray(r.json.services) ? r.json.services : [];
      const names = list.map((s) => s && s.name).filter((n) => typeof n === "string").map((n) => n.replace(/^\*\./, "a."));
      $("service-names").replaceChildren(...names.map((n) => el("option", { value: n })));
      if (!$("ex-name").value && names.length) $("ex-name").value = names[0];
    } catch (_) {
      /* the name stays free text */
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token").value.trim();
      if (v && v !== "••••••••") sessionStorage.setItem(TOKEN_KEY, v);
      applyToken();
    });
    $("token").addEventListener("focus", () => {
      if ($("token").value === "••••••••") $("token").value = "";
    });
    $("token-clear").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      applyToken();
    });
    $("explain-form").addEventListener("submit", explainAction);
    $("purge-form").addEventListener("submit", purgeAction);
    applyToken();
    loadServices();
    loadRegions().then(poll);
  });
})();
