// orbit-hil live page: loads /api/snapshot, then follows /api/stream (server-sent events).
// No framework and nothing fetched from elsewhere: the plots are drawn as SVG here.
"use strict";

(() => {
  const HK_KEEP = 600; // samples kept per housekeeping structure
  const EVENTS_KEEP = 200;
  const COMMANDS_KEEP = 100;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed"];
  const UNIT_TEXT = { degC: "°C" };
  // How the header colours each link state: good, on its way back, or not talking.
  const LINK_LEVEL = { up: "ok", starting: "wait", retrying: "wait" };

  // Which housekeeping fields each plot shows, with the label of each line.
  const PLOTS = [
    {
      id: "plot-power", structure: "environment", unit: "mW", zero: true,
      series: [["solar_power", "Solar"], ["load_power", "Load"], ["accel_power", "Accelerator"]],
    },
    {
      id: "plot-battery", structure: "environment", unit: "%",
      series: [["battery_soc", "State of charge"]],
    },
    {
      id: "plot-temperature", structure: "environment", unit: "degC",
      series: [["board_temp", "Board"], ["chip_temp", "Chip"]],
    },
    {
      id: "plot-edac", structure: "accelerator", unit: "words", zero: true, step: true,
      series: [["ecc_corrected", "Corrected"], ["ecc_uncorrectable", "Uncorrectable"]],
    },
    {
      id: "plot-tmr", structure: "accelerator", unit: "cycles", zero: true, step: true,
      series: [["tmr_mismatches", "Mismatches"]],
    },
  ];

  // Outcomes of a fault-injection campaign, in the order and colours the panel shows them.
  const OUTCOMES = [
    ["masked", "Masked"], ["corrected", "Corrected"], ["detected", "Detected"],
    ["sdc", "SDC"], ["hang", "Hang"], ["not_injected", "Not injected"],
  ];

  const state = {
    port: "",
    started: null,
    link: null,
    server: "connecting", // "connecting" | "up" | "down": the page's own connection
    hk: { system: [], environment: [], accelerator: [] },
    events: [], // oldest first
    commands: new Map(), // id -> item, in order of first appearance
    campaign: null,
  };

  const $ = (sel, root = document) => root.querySelector(sel);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function svgEl(tag, attrs = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  // ---------------------------------------------------------------- formatting

  function unitText(unit) {
    return UNIT_TEXT[unit] ?? unit ?? "";
  }

  function formatNumber(v) {
    if (typeof v !== "number" || !Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const digits = Math.abs(v) >= 100 ? 1 : 2;
    return String(Number(v.toFixed(digits)));
  }

  function formatValue(field) {
    if (!field) return "–";
    const [value, unit] = field;
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value !== "number") return String(value);
    const u = unitText(unit);
    return u ? `${formatNumber(value)} ${u}` : formatNumber(value);
  }

  // Seconds since the server started as m:ss (h:mm:ss past an hour).
  function formatClock(t, withTenths = false) {
    const neg = t < 0;
    let s = Math.abs(t);
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    const sec = withTenths ? s.toFixed(1).padStart(4, "0") : String(Math.floor(s)).padStart(2, "0");
    const body = h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
    return neg ? `-${body}` : body;
  }

  function formatDuration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d > 0) return `${d}d ${h}h ${m}m`;
    if (h > 0) return `${h}h ${m}m ${sec}s`;
    if (m > 0) return `${m}m ${sec}s`;
    return `${sec}s`;
  }

  // ---------------------------------------------------------------- plotting

  // A round step (1, 2 or 5 times a power of ten) giving about `count` ticks over [lo, hi].
  function niceStep(lo, hi, count) {
    const raw = (hi - lo) / Math.max(count, 1);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
  }

  // Tick values for a time axis in seconds: steps a clock reads well.
  function timeTicks(lo, hi, count) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
    const raw = (hi - lo) / Math.max(count, 1);
    const step = steps.find((s) => s >= raw) ?? steps[steps.length - 1];
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) ticks.push(v);
    return ticks;
  }

  // The y range of a plot: the data's, rounded out to whole ticks, widened so that a flat
  // line sits inside the plot; counters (`integer`) get whole-number ticks.
  function yDomain(values, zero, integer) {
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (zero) lo = Math.min(lo, 0);
    if (hi - lo < 1e-9) {
      const pad = Math.abs(hi) > 1 ? Math.abs(hi) * 0.05 : 1;
      hi += pad;
      if (!(zero && lo === 0)) lo -= pad;
    }
    let step = niceStep(lo, hi, 4);
    if (integer) step = Math.max(1, Math.round(step));
    const dlo = Math.floor(lo / step) * step;
    const dhi = Math.ceil(hi / step) * step;
    const ticks = [];
    for (let v = dlo; v <= dhi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
    return { lo: dlo, hi: dhi, ticks };
  }

  // Draws line series ([{key, label, color, points: [[t, v], ...]}]) into an <svg>, with
  // grid, axis values, axis titles and a marker on each line's newest point.
  function drawPlot(svg, series, opts) {
    const width = Math.max(svg.clientWidth || 0, 200);
    const height = Math.max(svg.clientHeight || 0, 120);
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();

    const all = series.flatMap((s) => s.points);
    if (all.length === 0) {
      const t = svgEl("text", { x: width / 2, y: height / 2, class: "nodata", "text-anchor": "middle" });
      t.textContent = "waiting for housekeeping…";
      svg.append(t);
      return;
    }
    const t0 = Math.min(...all.map((p) => p[0]));
    const t1 = Math.max(Math.max(...all.map((p) => p[0])), t0 + 2);
    const y = yDomain(all.map((p) => p[1]), opts.zero, opts.step);
    // Room on the left for the widest value label and the rotated unit.
    const labelChars = Math.max(...y.ticks.map((v) => formatNumber(v).length));
    const m = { left: 26 + labelChars * 6.4, right: 14, top: 10, bottom: 34 };
    const pw = width - m.left - m.right;
    const ph = height - m.top - m.bottom;
    const sx = (t) => m.left + ((t - t0) / (t1 - t0)) * pw;
    const sy = (v) => m.top + ph - ((v - y.lo) / (y.hi - y.lo)) * ph;

    const grid = svgEl("g", { class: "grid" });
    const axes = svgEl("g", { class: "axis" });
    for (const v of y.ticks) {
      const py = sy(v).toFixed(1);
      grid.append(svgEl("line", { x1: m.left, x2: m.left + pw, y1: py, y2: py }));
      const label = svgEl("text", { x: m.left - 6, y: py, "text-anchor": "end", "dominant-baseline": "middle" });
      label.textContent = formatNumber(v);
      axes.append(label);
    }
    for (const t of timeTicks(t0, t1, Math.max(2, Math.floor(pw / 80)))) {
      const px = sx(t).toFixed(1);
      grid.append(svgEl("line", { x1: px, x2: px, y1: m.top, y2: m.top + ph }));
      const label = svgEl("text", { x: px, y: m.top + ph + 14, "text-anchor": "middle" });
      label.textContent = formatClock(t);
      axes.append(label);
    }
    axes.append(svgEl("rect", { x: m.left, y: m.top, width: pw, height: ph, class: "frame" }));
    const xTitle = svgEl("text", { x: m.left + pw / 2, y: height - 4, "text-anchor": "middle", class: "title" });
    xTitle.textContent = "time since server start (m:ss)";
    const yTitle = svgEl("text", {
      x: 0, y: 0, "text-anchor": "middle", class: "title",
      transform: `translate(12 ${m.top + ph / 2}) rotate(-90)`,
    });
    yTitle.textContent = unitText(opts.unit);
    axes.append(xTitle, yTitle);
    svg.append(grid, axes);

    for (const s of series) {
      if (s.points.length === 0) continue;
      // A silence much longer than the usual spacing (a reboot, a lost link) breaks the line.
      const gaps = s.points.slice(1).map((p, i) => p[0] - s.points[i][0]).sort((a, b) => a - b);
      const usual = gaps.length ? gaps[Math.floor(gaps.length / 2)] : 0;
      const gap = Math.max(4 * usual, 2);
      let d = "";
      s.points.forEach(([t, v], i) => {
        const px = sx(t).toFixed(1);
        const py = sy(v).toFixed(1);
        if (i === 0 || t - s.points[i - 1][0] > gap) d += `M${px},${py}`;
        else if (opts.step) d += `H${px}V${py}`;
        else d += `L${px},${py}`;
      });
      svg.append(svgEl("path", {
        d, class: "series", stroke: s.color, "data-series": s.key, "data-n": s.points.length,
      }));
      const [lt, lv] = s.points[s.points.length - 1];
      svg.append(svgEl("circle", { cx: sx(lt).toFixed(1), cy: sy(lv).toFixed(1), r: 2.8, fill: s.color, class: "last" }));
    }
  }

  // ---------------------------------------------------------------- housekeeping

  function latest(structure) {
    const list = state.hk[structure];
    return list.length ? list[list.length - 1] : null;
  }

  function field(structure, name) {
    const item = latest(structure);
    return item ? item.fields[name] : undefined;
  }

  function setupPlots() {
    for (const plot of PLOTS) {
      const legend = $(`#${plot.id} .legend`);
      legend.replaceChildren();
      plot.series.forEach(([key, label], i) => {
        const color = COLORS[i % COLORS.length];
        legend.append(el("li", { "data-series": key },
          el("span", { class: "swatch", style: `background:${color}` }),
          el("span", { class: "name", text: label }),
          el("span", { class: "value", text: "–" })));
      });
    }
  }

  function renderPlots() {
    for (const plot of PLOTS) {
      const samples = state.hk[plot.structure];
      const series = plot.series.map(([key, label], i) => ({
        key, label, color: COLORS[i % COLORS.length],
        points: samples
          .filter((h) => h.fields[key] && typeof h.fields[key][0] === "number")
          .map((h) => [h.t, h.fields[key][0]]),
      }));
      drawPlot($(`#${plot.id} svg`), series, plot);
      for (const [key] of plot.series) {
        const value = $(`#${plot.id} .legend li[data-series="${key}"] .value`);
        const item = latest(plot.structure);
        const f = item ? item.fields[key] : undefined;
        value.textContent = formatValue(f);
        if (f) {
          value.dataset.value = String(f[0]);
          value.dataset.t = String(item.t);
        }
      }
    }
  }

  function renderFacts() {
    const acc = (n) => field("accelerator", n);
    const env = (n) => field("environment", n);
    const sys = (n) => field("system", n);
    const num = (f) => (f ? formatValue(f) : "–");
    const jobId = acc("last_job_id");
    const status = acc("last_job_status");
    const err = acc("last_job_err_code");
    let job = "–";
    if (jobId) {
      job = `#${jobId[0]} ${status ? status[0] : ""}`;
      if (err && err[0]) job += ` (error ${err[0]})`;
    }
    const triple = (a, b, c) => (a ? `${formatNumber(a[0])} / ${formatNumber(b[0])} / ${formatNumber(c[0])}` : "–");
    const rows = [
      ["Last job", job],
      ["Cycles · MACs", acc("last_job_cycles") ? `${num(acc("last_job_cycles"))} · ${num(acc("last_job_macs"))}` : "–"],
      ["Job energy", num(acc("last_job_energy"))],
      ["Jobs done / failed / aborted", sys("jobs_completed") ? triple(sys("jobs_completed"), sys("jobs_failed"), sys("jobs_aborted")) : "–"],
      ["Upsets SPM / FF / FW RAM", env("upsets_spm") ? triple(env("upsets_spm"), env("upsets_flipflop"), env("upsets_fw_ram")) : "–"],
      ["Latch-ups · accel resets", acc("latchups") ? `${num(acc("latchups"))} · ${num(acc("accel_resets"))}` : "–"],
      ["Scrub passes", num(acc("scrub_passes"))],
      ["TC accepted / refused", sys("tc_accepted") ? `${num(sys("tc_accepted"))} / ${num(sys("tc_refused"))}` : "–"],
    ];
    const list = $("#facts-list");
    list.replaceChildren(...rows.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))));
  }

  function renderHeader() {
    $("#port").textContent = state.port || "–";
    document.title = state.port ? `orbit-hil · ${state.port}` : "orbit-hil · live";
    const link = $("#link");
    const detail = $("#link-detail");
    if (state.server !== "up") {
      link.dataset.state = state.server === "down" ? "server-down" : "unknown";
      link.dataset.level = state.server === "down" ? "bad" : "wait";
      link.textContent = state.server === "down" ? "server unreachable" : "connecting";
      detail.hidden = true;
    } else if (state.link) {
      link.dataset.state = state.link.state;
      link.dataset.level = LINK_LEVEL[state.link.state] ?? "bad";
      link.textContent = state.link.state;
      detail.textContent = state.link.detail || "";
      detail.hidden = !state.link.detail;
    }
    const mode = field("system", "mode");
    const modeEl = $("#mode");
    modeEl.textContent = mode ? String(mode[0]) : "–";
    modeEl.dataset.mode = mode ? String(mode[0]) : "";
    const uptime = field("system", "uptime");
    $("#uptime").textContent = uptime ? formatDuration(uptime[0]) : "–";
    const boots = field("system", "boot_count");
    $("#boots").textContent = boots ? String(boots[0]) : "–";
    const accel = field("accelerator", "accel_state");
    $("#accel-state").textContent = accel ? String(accel[0]) : "–";
    const orbit = field("environment", "orbit");
    if (orbit) {
      const flags = [];
      if (field("environment", "eclipse")?.[0]) flags.push("eclipse");
      if (field("environment", "in_saa")?.[0]) flags.push("SAA");
      $("#orbit").textContent = `#${orbit[0]}${flags.length ? ` · ${flags.join(" · ")}` : " · sunlit"}`;
    }
    renderAge();
  }

  function renderAge() {
    let newest = null;
    for (const list of Object.values(state.hk)) {
      if (list.length && (newest === null || list[list.length - 1].t > newest)) newest = list[list.length - 1].t;
    }
    const age = $("#hk-age");
    if (newest === null || state.started === null) {
      age.textContent = "–";
      return;
    }
    const ago = Date.now() / 1000 - (state.started + newest);
    age.textContent = ago < 1.5 ? "just now" : `${formatDuration(ago)} ago`;
    age.classList.toggle("stale", ago > 10);
  }

  // ---------------------------------------------------------------- events

  function eventNode(e) {
    // The text usually opens with the event's name, which the line already shows.
    const text = e.text.startsWith(`${e.name} `) ? e.text.slice(e.name.length + 1) : e.text;
    return el("li", { "data-name": e.name, "data-severity": e.severity, title: e.text },
      el("time", { text: formatClock(e.t, true) }),
      el("span", { class: "sev", text: e.severity }),
      el("span", { class: "ev-name", text: e.name }),
      el("span", { class: "ev-text", text }));
  }

  function renderEvents() {
    const list = $("#events");
    list.replaceChildren(...state.events.slice().reverse().map(eventNode));
    updateEventCount();
  }

  function updateEventCount() {
    $("#events-empty").hidden = state.events.length > 0;
    $("#events-count").textContent = state.events.length ? String(state.events.length) : "";
  }

  function addEvent(e) {
    const key = `${e.t}|${e.name}|${e.text}`;
    if (state.events.slice(-50).some((x) => `${x.t}|${x.name}|${x.text}` === key)) return;
    state.events.push(e);
    const list = $("#events");
    list.prepend(eventNode(e));
    while (state.events.length > EVENTS_KEEP) {
      state.events.shift();
      list.lastElementChild?.remove();
    }
    updateEventCount();
  }

  // ---------------------------------------------------------------- commands

  function stageBadges(cmd) {
    const badges = [];
    const stages = cmd.stages || [];
    const find = (name) => stages.find((s) => s.stage === name);
    for (const name of ["accepted", "started"]) {
      const s = find(name);
      if (s) badges.push(badge(name, s.ok, name, s.t));
    }
    const progress = stages.filter((s) => s.stage === "progress");
    if (progress.length) {
      const last = progress[progress.length - 1];
      const b = badge("progress", progress.every((s) => s.ok), `progress ×${progress.length}`, last.t);
      b.dataset.count = String(progress.length);
      badges.push(b);
    }
    for (const name of ["completed", "failed"]) {
      const s = find(name);
      if (s) badges.push(badge(name, name === "failed" ? false : s.ok, name, s.t));
    }
    return badges;
  }

  function badge(stage, ok, text, t) {
    return el("span", {
      class: "badge", "data-stage": stage, "data-ok": ok ? "true" : "false",
      title: t !== undefined ? `${stage} at ${formatClock(t, true)}` : undefined, text,
    });
  }

  // A command's name, which may break after each "/" of its service/subtype.
  function commandName(name) {
    const span = el("span", { class: "cmd" });
    name.split("/").forEach((part, i, parts) => {
      span.append(i < parts.length - 1 ? `${part}/` : part);
      if (i < parts.length - 1) span.append(document.createElement("wbr"));
    });
    return span;
  }

  // "hil run (pid 4242)": the program, with its process id on a line of its own.
  function clientCell(label) {
    const cell = el("td", { class: "client" });
    const at = label.lastIndexOf(" (pid ");
    if (at < 0) cell.append(el("span", { class: "who", text: label }));
    else cell.append(el("span", { class: "who", text: label.slice(0, at) }), " ",
      el("span", { class: "pid", text: label.slice(at + 1) }));
    return cell;
  }

  function commandRow(cmd) {
    const name = el("td", { class: "name" }, commandName(cmd.name));
    if (cmd.detail) name.append(el("div", { class: "detail", text: cmd.detail }));
    return el("tr", { "data-id": String(cmd.id), "data-state": cmd.state },
      el("td", { class: "when" },
        el("span", { class: "id", text: `#${cmd.id}` }),
        el("span", { class: "time", text: formatClock(cmd.t, true) })),
      clientCell(cmd.client),
      name,
      el("td", { class: "stages" }, ...stageBadges(cmd)),
      el("td", { class: "state" }, el("span", { class: "pill", "data-state": cmd.state, text: cmd.state })));
  }

  function renderCommands() {
    const body = $("#commands tbody");
    body.replaceChildren(...[...state.commands.values()].reverse().map(commandRow));
    updateCommandCount();
  }

  function updateCommandCount() {
    $("#commands-empty").hidden = state.commands.size > 0;
    $("#commands").hidden = state.commands.size === 0;
    $("#commands-count").textContent = state.commands.size ? String(state.commands.size) : "";
  }

  function upsertCommand(cmd) {
    const body = $("#commands tbody");
    const known = state.commands.has(cmd.id);
    state.commands.set(cmd.id, cmd);
    const row = commandRow(cmd);
    const old = known ? body.querySelector(`tr[data-id="${CSS.escape(String(cmd.id))}"]`) : null;
    if (old) old.replaceWith(row);
    else body.prepend(row);
    while (state.commands.size > COMMANDS_KEEP) {
      const oldest = state.commands.keys().next().value;
      state.commands.delete(oldest);
      body.querySelector(`tr[data-id="${CSS.escape(String(oldest))}"]`)?.remove();
    }
    updateCommandCount();
  }

  // ---------------------------------------------------------------- campaign

  function renderCampaign() {
    const box = $("#campaign");
    const c = state.campaign;
    if (!c) {
      box.dataset.state = "none";
      delete box.dataset.done;
      delete box.dataset.total;
      box.replaceChildren(el("p", { class: "empty", text: "No campaign running." }));
      return;
    }
    const finished = c.total > 0 && c.done >= c.total;
    box.dataset.state = finished ? "finished" : "running";
    box.dataset.done = String(c.done);
    box.dataset.total = String(c.total);
    const pct = c.total > 0 ? Math.min(100, (100 * c.done) / c.total) : 0;
    const counts = c.counts || {};
    const sum = OUTCOMES.reduce((acc, [k]) => acc + (counts[k] || 0), 0);
    const stacked = el("div", { class: "outcome-bar", title: "outcomes so far" });
    const list = el("ul", { class: "outcomes" });
    for (const [key, label] of OUTCOMES) {
      const n = counts[key] || 0;
      if (sum > 0 && n > 0) {
        stacked.append(el("span", { class: `seg o-${key}`, style: `width:${(100 * n) / sum}%` }));
      }
      list.append(el("li", { "data-outcome": key },
        el("span", { class: `swatch o-${key}` }),
        el("span", { class: "name", text: label }),
        el("span", { class: "count", text: String(n) })));
    }
    box.replaceChildren(
      el("div", { class: "campaign-head" },
        el("span", { class: "campaign-name", text: c.name }),
        el("span", { class: "campaign-progress", text: `${c.done} / ${c.total} (${pct.toFixed(0)} %)${finished ? " · finished" : ""}` })),
      el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": String(c.total), "aria-valuenow": String(c.done) },
        el("div", { class: "fill", style: `width:${pct}%` })),
      stacked,
      list);
  }

  // ---------------------------------------------------------------- state updates

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      renderPlots();
      renderFacts();
      renderHeader();
    });
  }

  function addHk(item) {
    const list = state.hk[item.structure];
    if (!list) return;
    if (list.length && item.t <= list[list.length - 1].t) return; // already held
    list.push(item);
    if (list.length > HK_KEEP) list.splice(0, list.length - HK_KEEP);
    scheduleDraw();
  }

  function apply(item) {
    switch (item.kind) {
      case "hk":
        addHk(item);
        break;
      case "event":
        addEvent(item);
        break;
      case "command":
        upsertCommand(item);
        break;
      case "campaign":
        if (!state.campaign || item.t >= state.campaign.t) {
          state.campaign = item;
          renderCampaign();
        }
        break;
      case "link":
        if (!state.link || item.t >= state.link.t) {
          state.link = item;
          renderHeader();
        }
        break;
      default:
        break;
    }
  }

  function loadSnapshot(snap) {
    state.port = snap.port;
    state.started = snap.started;
    state.link = snap.link ? { t: -Infinity, ...snap.link } : null;
    state.hk = { system: [], environment: [], accelerator: [] };
    for (const h of snap.hk || []) {
      const list = state.hk[h.structure];
      if (list && (!list.length || h.t > list[list.length - 1].t)) list.push(h);
    }
    state.events = (snap.events || []).slice(-EVENTS_KEEP);
    state.commands = new Map();
    for (const c of (snap.commands || []).slice(-COMMANDS_KEEP)) state.commands.set(c.id, c);
    state.campaign = snap.campaign || null;
    renderEvents();
    renderCommands();
    renderCampaign();
    renderHeader();
    scheduleDraw();
  }

  // The stream is opened first and its items held until the snapshot is in, so nothing
  // that happens between the two is lost; items the snapshot already holds are dropped.
  function connect() {
    let synced = false;
    let held = [];
    const source = new EventSource("api/stream");
    source.onmessage = (msg) => {
      let item;
      try {
        item = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (synced) apply(item);
      else held.push(item);
    };
    source.onopen = async () => {
      synced = false;
      held = [];
      state.server = "up";
      try {
        const response = await fetch("api/snapshot", { cache: "no-store" });
        if (!response.ok) throw new Error(`snapshot: HTTP ${response.status}`);
        loadSnapshot(await response.json());
      } catch (err) {
        console.error(err);
      }
      synced = true;
      for (const item of held) apply(item);
      held = [];
      document.body.dataset.ready = "true";
    };
    source.onerror = () => {
      state.server = "down";
      renderHeader();
    };
  }

  setupPlots();
  renderCampaign();
  updateEventCount();
  updateCommandCount();
  window.addEventListener("resize", scheduleDraw);
  setInterval(renderAge, 1000);
  connect();
})();
