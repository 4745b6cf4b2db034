// The operations console: reads the worker's public JSON routes and draws them with uPlot.
// Every value from the API is written as text (textContent, never markup).
"use strict";

(() => {
  const REFRESH_MS = 15000;
  const DAY = 86400;
  // 21 September 2022, 07:00 UTC (10:00 in Moscow): partial mobilisation announced
  const MOBILISATION = Date.UTC(2022, 8, 21, 7, 0, 0) / 1000;
  const COLORS = { blue: "#0072b2", orange: "#e69f00", vermillion: "#d55e00", green: "#009e73", ink: "#111" };
  const PRESETS = {
    all: () => ({ start: null, end: null }),
    september: () => ({ start: "2022-09-14T00:00:00Z", end: "2022-10-01T00:00:00Z" }),
    "last-week": (overview) => {
      const times = (overview ? overview.workers : []).flatMap((w) => (w.inputs || []).map((i) => i.stream_time)).filter((t) => t != null);
      if (!times.length) return { start: null, end: null };
      const end = Math.ceil(Math.max(...times) / 3600) * 3600;
      return { start: iso(end - 7 * DAY), end: iso(end) };
    },
  };

  // What the page shows, kept where a test (or a curious operator) can read it.
  const view = { charts: {}, statements: [], health: null, refreshes: 0, error: null, stale: [], period: { start: null, end: null } };
  window.borderflowConsole = view;
  let overview = null;
  let previous = null;

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function iso(seconds) {
    return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
  }

  function utc(seconds) {
    return seconds == null ? "–" : iso(Math.floor(seconds)).replace("T", " ").replace("Z", "");
  }

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // Axis labels in UTC, 24-hour: the day at midnight ("21 Sep"), the hour otherwise ("06:00").
  function timeTicks(u, ticks) {
    return ticks.map((t) => {
      const d = new Date(t * 1000);
      const hour = `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
      return d.getUTCHours() === 0 && d.getUTCMinutes() === 0 ? `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}` : hour;
    });
  }

  function number(value, digits = 0) {
    if (value == null || Number.isNaN(value)) return "–";
    return Number(value).toLocaleString("en-GB", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  // At most IN_FLIGHT requests at once: the worker limits what one client may have in progress
  // (BORDERFLOW_CLIENT_CONCURRENCY), and a page of many checkpoints must not trip it.
  const IN_FLIGHT = 4;
  let inFlight = 0;
  const waiting = [];

  async function slot() {
    if (inFlight < IN_FLIGHT) {
      inFlight += 1;
      return;
    }
    await new Promise((resolve) => waiting.push(resolve));
  }

  function release() {
    const next = waiting.shift();
    if (next) next();
    else inFlight -= 1;
  }

  async function getJSON(path, attempt = 0) {
    await slot();
    let response;
    let body = null;
    try {
      response = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
    } finally {
      release();
    }
    if (response.status === 429 && attempt < 3) {
      const seconds = Math.min(10, Number(response.headers.get("Retry-After")) || 1);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      return getJSON(path, attempt + 1);
    }
    if (!response.ok) {
      const reason = body && body.error ? body.error : response.statusText;
      throw new Error(`${path.split("?")[0]} answered ${response.status}: ${reason}`);
    }
    return body;
  }

  // -- the period ---------------------------------------------------------------------
  function readPeriod() {
    const query = new URLSearchParams(location.search);
    view.period = { start: query.get("start"), end: query.get("end") };
    document.getElementById("start").value = view.period.start ? view.period.start.slice(0, 16) : "";
    document.getElementById("end").value = view.period.end ? view.period.end.slice(0, 16) : "";
  }

  function setPeriod(period) {
    view.period = period;
    const query = new URLSearchParams();
    if (period.start) query.set("start", period.start);
    if (period.end) query.set("end", period.end);
    history.replaceState(null, "", query.toString() ? `?${query}` : location.pathname);
    document.getElementById("start").value = period.start ? period.start.slice(0, 16) : "";
    document.getElementById("end").value = period.end ? period.end.slice(0, 16) : "";
    refresh();
  }

  // ``lead`` seconds earlier than the period's start: rolling windows that end inside the period start before it
  function periodQuery(lead = 0) {
    let query = "";
    if (view.period.start) query += `&start=${encodeURIComponent(iso(Date.parse(view.period.start) / 1000 - lead))}`;
    if (view.period.end) query += `&end=${encodeURIComponent(view.period.end)}`;
    return query;
  }

  // -- charts ---------------------------------------------------------------------------
  // Points of a regular grid at most: counts far apart in time are drawn at their own windows only, not every hour between.
  const MAX_GRID_POINTS = 5000;

  // Values on a regular grid of ``step`` seconds over the first line's points: missing windows are 0 (the API leaves empty ones out).
  function onGrid(step, ...lines) {
    if (!lines[0].size) return null;
    let first = Infinity;
    let last = -Infinity;
    for (const x of lines[0].keys()) {
      if (x < first) first = x;
      if (x > last) last = x;
    }
    let grid = [];
    if ((last - first) / step < MAX_GRID_POINTS) for (let x = first; x <= last; x += step) grid.push(x);
    else grid = Array.from(lines[0].keys()).sort((a, b) => a - b);
    return [grid, ...lines.map((line) => grid.map((x) => line.get(x) || 0))];
  }

  function markerPlugin(at) {
    return {
      hooks: {
        draw: (u) => {
          const x = u.valToPos(at, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = COLORS.ink;
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.setLineDash([8 * devicePixelRatio, 6 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        },
      },
    };
  }

  const AXIS_FONT = "15px DejaVu Sans, Arial, sans-serif";

  function chartOptions(width, series, rightAxis) {
    const axes = [
      { font: AXIS_FONT, stroke: COLORS.ink, grid: { stroke: "#e3e3e3" }, values: timeTicks, space: 70 },
      { font: AXIS_FONT, stroke: COLORS.ink, grid: { stroke: "#e3e3e3" }, size: 70, values: (u, ticks) => ticks.map((t) => number(t)) },
    ];
    if (rightAxis) axes.push({ scale: "r", side: 1, font: AXIS_FONT, stroke: COLORS.orange, grid: { show: false }, size: 80, values: (u, ticks) => ticks.map((t) => number(t)) });
    const zeroBased = (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1];
    return {
      width,
      height: 250,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      // one point alone is drawn in the middle of a day, not across years
      scales: { x: { time: true, range: (u, min, max) => (max - min < 3600 ? [min - 43200, max + 43200] : [min, max]) }, y: { range: zeroBased }, r: { range: zeroBased } },
      axes,
      series: [{ label: "hour (UTC)", value: (u, v) => (v == null ? "–" : utc(v).slice(0, 16)) }, ...series],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      plugins: [markerPlugin(MOBILISATION)],
    };
  }

  function draw(id, container, title, figure, data, series, rightAxis, points) {
    let entry = view.charts[id];
    if (!entry) {
      const heading = el("h3", {}, title, " ", el("span", { class: "figure" }));
      const body = el("div", { class: "plot" });
      const box = el("div", { class: "chart", dataset: { chart: id } }, heading, body);
      container.append(box);
      entry = view.charts[id] = { box, heading, body, plot: null };
    }
    entry.heading.querySelector(".figure").textContent = figure;
    entry.points = points;
    if (!data) {
      if (entry.plot) {
        entry.plot.destroy();
        entry.plot = null;
      }
      entry.data = null;
      entry.body.replaceChildren(el("p", { class: "empty" }, "no counts in this period"));
      return;
    }
    entry.data = data;
    const width = Math.max(320, entry.box.clientWidth - 8);
    if (entry.plot) {
      entry.plot.setData(data);
      if (entry.plot.width !== width) entry.plot.setSize({ width, height: 250 });
    } else {
      entry.body.replaceChildren();
      entry.plot = new uPlot(chartOptions(width, series, rightAxis), data, entry.body);
    }
  }

  function byStart(windows, field, shift = 0) {
    return new Map(windows.map((w) => [Date.parse(w.start) / 1000 + shift, w[field]]));
  }

  // Every registered checkpoint gets a chart; unregistered ones (any feed may invent them) only the first few,
  // the rest are listed: a flood of made-up checkpoints must not turn into thousands of charts and requests.
  const UNREGISTERED_CHARTS = 12;
  const UNREGISTERED_LISTED = 100;

  async function drawCheckpoints(all, windows) {
    const [bucket, rolling] = windows;
    const known = (overview && overview.checkpoints) || {};
    const unregistered = all.filter((b) => !(known[b] && known[b].registered));
    const borders = all.filter((b) => known[b] && known[b].registered).concat(unregistered.slice(0, UNREGISTERED_CHARTS));
    const rest = unregistered.slice(UNREGISTERED_CHARTS);
    view.unchartedCheckpoints = rest.length;
    document.getElementById("checkpoint-more").textContent = rest.length
      ? `${number(rest.length)} more unregistered checkpoints, not charted: ${rest.slice(0, UNREGISTERED_LISTED).join(", ")}${rest.length > UNREGISTERED_LISTED ? ", …" : ""}`
      : "";
    const title = (border) => (known[border] && known[border].registered ? known[border].name : `${border} (unregistered)`);
    const answers = await Promise.all(
      borders.map(async (border) => {
        const path = `/counts/borders/${encodeURIComponent(border)}`;
        const [hourly, day] = await Promise.all([getJSON(`${path}?window=${bucket}${periodQuery()}`), getJSON(`${path}?window=${rolling}${periodQuery(DAY)}`)]);
        return { border, hourly: hourly.windows, rolling: day.windows };
      }),
    );
    const total = (a) => a.hourly.reduce((sum, w) => sum + w.count, 0);
    answers.sort((a, b) => total(b) - total(a) || a.border.localeCompare(b.border));
    const container = document.getElementById("checkpoint-charts");
    for (const answer of answers) {
      const step = answer.hourly.length ? (Date.parse(answer.hourly[0].end) - Date.parse(answer.hourly[0].start)) / 1000 : 3600;
      // a rolling window is drawn at its last bucket (the value at hour h is the 24 h ending with h), over the hours of the period that have counts
      const size = answer.rolling.length ? (Date.parse(answer.rolling[0].end) - Date.parse(answer.rolling[0].start)) / 1000 : DAY;
      const data = onGrid(step, byStart(answer.hourly, "count"), byStart(answer.rolling, "count", size - step));
      const series = [
        { label: `per ${bucket}`, stroke: COLORS.blue, fill: "rgba(0,114,178,0.45)", width: 1, paths: uPlot.paths.bars({ size: [1, Infinity], gap: 0 }), value: (u, v) => number(v) },
        { label: `rolling ${rolling}`, stroke: COLORS.orange, width: 3, scale: "r", value: (u, v) => number(v) },
      ];
      draw(`border:${answer.border}`, container, title(answer.border), `${number(total(answer))} in the period`, data, series, true, {
        hourly: answer.hourly,
        rolling: answer.rolling,
      });
      container.append(view.charts[`border:${answer.border}`].box); // busiest first
    }
  }

  async function drawCountries(countries, windows) {
    const [bucket] = windows;
    const container = document.getElementById("country-charts");
    const answers = await Promise.all(
      countries.map(async (country) => ({ country, windows: (await getJSON(`/net-inflow/${encodeURIComponent(country)}?window=${bucket}${periodQuery()}`)).windows })),
    );
    for (const { country, windows: rows } of answers) {
      if (!rows.length && !view.charts[`country:${country}`]) continue; // a country with exits only (the origin)
      const step = rows.length ? (Date.parse(rows[0].end) - Date.parse(rows[0].start)) / 1000 : 3600;
      const data = onGrid(step, byStart(rows, "entries"), byStart(rows, "departures"), byStart(rows, "net"));
      const net = rows.reduce((sum, w) => sum + w.net, 0);
      const series = [
        { label: "entries", stroke: COLORS.blue, width: 2, value: (u, v) => number(v) },
        { label: "departures", stroke: COLORS.vermillion, width: 2, value: (u, v) => number(v) },
        { label: "net inflow", stroke: COLORS.green, width: 3, value: (u, v) => number(v) },
      ];
      draw(`country:${country}`, container, country, `net ${number(net)} in the period`, data, series, false, { windows: rows });
    }
  }

  // -- statements -------------------------------------------------------------------------
  // Whether a statement's figure disagrees with what was observed; one whose metric is not counted cannot disagree.
  function disagrees(s) {
    return s.observed != null && (s.ratio == null || s.ratio < 0.8 || s.ratio > 1.25);
  }

  async function drawStatements() {
    const { statements } = await getJSON("/statements");
    view.statements = statements;
    const rows = statements.map((s) => {
      const off = disagrees(s);
      const verdict = s.observed == null ? "not counted here" : s.ratio == null ? "disagrees: nothing observed" : off ? "disagrees" : "agrees";
      return el(
        "tr",
        { class: off ? "disagree" : "", dataset: { eventId: s.event_id, ratio: s.ratio == null ? "" : String(s.ratio), observed: s.observed == null ? "" : String(s.observed) } },
        el("td", {}, utc(Date.parse(s.issued_at) / 1000).slice(0, 16)),
        el("td", { class: "source" }, s.source),
        el("td", {}, s.country),
        el("td", {}, s.metric),
        el("td", { class: "num" }, number(s.value)),
        el("td", { class: "num" }, number(s.observed)),
        el("td", { class: "num" }, s.ratio == null ? "–" : number(s.ratio, 2)),
        el("td", { class: off ? "verdict" : "" }, verdict),
        el("td", {}, s.since ? `${utc(Date.parse(s.since) / 1000).slice(0, 16)} → ${utc(Date.parse(s.issued_at) / 1000).slice(0, 16)}` : "–"),
        el("td", { class: "quote" }, s.quote || ""),
      );
    });
    document.querySelector("#statement-table tbody").replaceChildren(...rows);
  }

  // -- health -----------------------------------------------------------------------------
  function totals(workers) {
    const sum = { accepted: 0, duplicate: 0, late: 0, invalid: 0, deadLetters: {} };
    for (const worker of workers) {
      for (const outcomes of Object.values(worker.events || {})) for (const [outcome, n] of Object.entries(outcomes)) if (outcome in sum) sum[outcome] += n;
      for (const [reason, n] of Object.entries(worker.dead_letters || {})) sum.deadLetters[reason] = (sum.deadLetters[reason] || 0) + n;
    }
    return sum;
  }

  function tile(label, figure, alarm) {
    return el("div", { class: alarm ? "tile alarm" : "tile", dataset: { tile: label } }, el("div", { class: "figure" }, figure), el("div", { class: "label" }, label));
  }

  function drawHealth(now) {
    const workers = overview.workers;
    const inputs = workers.flatMap((w) => (w.inputs || []).map((i) => ({ ...i, worker: w.worker })));
    const sum = totals(workers);
    const seconds = previous ? (now - previous.at) / 1000 : null;
    const rate = (key) => (seconds ? Math.max(0, (sum[key] - previous.sum[key]) / seconds) : null);
    const ready = workers.filter((w) => w.ready).length;
    const lag = inputs.reduce((s, i) => s + (i.lag || 0), 0);
    const dead = Object.values(sum.deadLetters).reduce((s, n) => s + n, 0);
    const deadBefore = previous ? Object.values(previous.sum.deadLetters).reduce((s, n) => s + n, 0) : dead;
    view.health = { workers: workers.length, ready, partitions: inputs.length, lag, totals: sum, rates: { accepted: rate("accepted"), duplicate: rate("duplicate"), late: rate("late"), invalid: rate("invalid") } };
    document.getElementById("tiles").replaceChildren(
      tile("workers ready", `${ready} / ${workers.length}`, ready < workers.length),
      tile("input partitions served", number(inputs.length)),
      tile("messages not yet applied (lag)", number(lag), lag > 10000),
      tile("accepted / s", number(view.health.rates.accepted, 1)),
      tile("duplicates / s", number(view.health.rates.duplicate, 1)),
      tile("late / s", number(view.health.rates.late, 1)),
      tile("invalid / s", number(view.health.rates.invalid, 1)),
      tile("dead letters", number(dead), dead > deadBefore), // attention while new ones arrive
    );
    document.querySelector("#workers tbody").replaceChildren(
      ...workers.map((w) => el("tr", {}, el("td", {}, w.worker), el("td", {}, w.ready ? "ready" : w.error || "recovering"), el("td", {}, (w.partitions || []).join(", ") || "–"))),
    );
    document.querySelector("#partitions tbody").replaceChildren(
      ...inputs.map((i) =>
        el("tr", { dataset: { tp: `${i.topic}|${i.partition}` } }, el("td", {}, i.topic), el("td", { class: "num" }, i.partition), el("td", {}, i.worker), el("td", { class: "num" }, number(i.offset)), el("td", { class: i.lag > 10000 ? "num lagging" : "num" }, number(i.lag)), el("td", {}, utc(i.stream_time))),
      ),
    );
    const reasons = Object.keys(sum.deadLetters).sort();
    document.querySelector("#dead-letters tbody").replaceChildren(
      ...reasons.map((r) => {
        const perSecond = seconds && previous.sum.deadLetters[r] != null ? Math.max(0, (sum.deadLetters[r] - previous.sum.deadLetters[r]) / seconds) : null;
        return el("tr", {}, el("td", {}, r), el("td", { class: "num" }, number(sum.deadLetters[r])), el("td", { class: "num" }, number(perSecond, 2)));
      }),
    );
    previous = { at: now, sum };
  }

  // -- the refresh loop ---------------------------------------------------------------------
  let running = null;
  let again = false;
  let timer = null;

  // One refresh at a time; one asked for meanwhile (a new period) runs right after it.
  async function refresh() {
    if (running) {
      again = true;
      return running.then(() => running || refresh());
    }
    clearTimeout(timer);
    const status = document.getElementById("status");
    running = (async () => {
      try {
        overview = await getJSON("/overview");
        const now = Date.now();
        drawHealth(now);
        await Promise.all([drawCheckpoints(overview.borders, overview.windows), drawCountries(overview.countries, overview.windows), drawStatements()]);
        view.error = null;
        view.refreshes += 1;
        // a worker out of touch with Kafka, or recovering: its own figures are not current, so say so
        view.stale = overview.workers.filter((w) => !w.ready).map((w) => `${w.worker}: ${w.error || "recovering"}`);
        status.className = view.stale.length ? "stale" : "";
        status.textContent = view.stale.length
          ? `Stale or incomplete: ${view.stale.join("; ")} · updated ${utc(now / 1000)} UTC`
          : `Updated ${utc(now / 1000)} UTC · refreshes every ${REFRESH_MS / 1000} s`;
        document.body.dataset.refreshes = String(view.refreshes);
      } catch (error) {
        view.error = String(error.message || error);
        status.className = "error";
        status.textContent = `Not up to date: ${view.error} · retrying`;
      } finally {
        running = null;
        if (again) {
          again = false;
          refresh();
        } else {
          timer = setTimeout(refresh, REFRESH_MS);
        }
      }
    })();
    return running;
  }
  view.refresh = refresh;

  document.getElementById("period").addEventListener("submit", (event) => {
    event.preventDefault();
    const start = document.getElementById("start").value;
    const end = document.getElementById("end").value;
    setPeriod({ start: start ? `${start}:00Z` : null, end: end ? `${end}:00Z` : null });
  });
  for (const button of document.querySelectorAll("[data-preset]")) button.addEventListener("click", () => setPeriod(PRESETS[button.dataset.preset](overview)));
  window.addEventListener("resize", () => {
    for (const entry of Object.values(view.charts)) if (entry.plot) entry.plot.setSize({ width: Math.max(320, entry.box.clientWidth - 8), height: 250 });
  });
  readPeriod();
  refresh();
})();
