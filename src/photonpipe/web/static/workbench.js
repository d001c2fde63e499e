// photonpipe session workbench: every change is one POST to the server, which calls the same
// Session API as the `photonpipe session` commands; the page only shows and asks.
"use strict";

(function () {
  const base = document.querySelector('meta[name="session-base"]').content;
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const state = { order: 0, options: null, line: null, lines: [], mode: "none", maskStart: null };
  const $ = function (id) { return document.getElementById(id); };

  function say(text, isError) {
    const m = $("message");
    m.textContent = text;
    m.classList.toggle("error", Boolean(isError));
  }

  function busy(on) { document.body.dataset.busy = on ? "true" : "false"; }

  async function get(path) {
    const response = await fetch(base + path);
    const result = await response.json();
    if (!response.ok) throw new Error(result.error || response.statusText);
    return result;
  }

  async function post(action, payload) {
    busy(true);
    try {
      const response = await fetch(base + "api/" + action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: JSON.stringify(payload),
      });
      const result = await response.json().catch(function () { return { error: response.statusText }; });
      if (!response.ok) throw new Error(result.error || response.statusText);
      return result;
    } finally {
      busy(false);
    }
  }

  function fmt(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  async function embed(elementId, item, keepRangeName) {
    const element = $(elementId);
    let kept = null;
    if (keepRangeName && element.bokehDocument) {
      const r = element.bokehDocument.get_model_by_name(keepRangeName);
      if (r) kept = [r.start, r.end];
    }
    element.dataset.ready = "false";
    element.innerHTML = "";
    const views = await Bokeh.embed.embed_item(item, elementId);
    element.bokehDocument = Array.from(views.roots || views)[0].model.document;
    if (kept) {
      const r = element.bokehDocument.get_model_by_name(keepRangeName);
      if (r) { r.start = kept[0]; r.end = kept[1]; }
    }
    element.dataset.ready = "true";
  }

  // --- orders and continuum ------------------------------------------------------------------

  function showOptions(options) {
    state.options = options;
    $("cont-function").value = options.function;
    $("cont-degree").value = options.degree;
    $("cont-knots").value = options.knot_spacing;
    $("cont-low").value = options.low_sigma;
    $("cont-high").value = options.high_sigma;
    $("cont-iterations").value = options.max_iterations;
    $("cont-defaults").checked = options.use_default_masks;
    const masks = $("masks");
    masks.innerHTML = "";
    options.masks.forEach(function (m, i) {
      const span = document.createElement("span");
      span.className = "mask";
      span.textContent = fmt(m[0], 2) + "–" + fmt(m[1], 2) + " Å ";
      const remove = document.createElement("button");
      remove.textContent = "remove";
      remove.dataset.index = i;
      remove.addEventListener("click", function () {
        const next = state.options.masks.filter(function (_, j) { return j !== i; });
        fit({ masks: next });
      });
      span.appendChild(remove);
      masks.appendChild(span);
    });
    if (!options.masks.length) masks.textContent = "none";
    const defaults = options.default_masks || [];
    if (defaults.length) {
      masks.appendChild(document.createTextNode(" · default: " + defaults.map(function (m) {
        return m[2] + " " + fmt(m[0], 1) + "–" + fmt(m[1], 1);
      }).join(", ")));
    }
    $("points").textContent = options.added_points.length ?
      options.added_points.map(function (p) { return fmt(p[0], 2) + " Å: " + Number(p[1]).toPrecision(4); }).join("; ") : "none";
    $("order-info").textContent = options.normalized ?
      "continuum: " + options.function + ", rms " + Number(options.rms).toPrecision(3) + ", " + options.iterations + " iterations" :
      "not normalised yet";
  }

  async function loadOrder(index) {
    state.order = index;
    const result = await get("api/order/" + index);
    await embed("order-plot", result.item, null);
    showOptions(result.options);
  }

  function formOptions() {
    return {
      order: state.order,
      function: $("cont-function").value,
      degree: parseInt($("cont-degree").value, 10),
      knot_spacing: parseFloat($("cont-knots").value),
      low_sigma: parseFloat($("cont-low").value),
      high_sigma: parseFloat($("cont-high").value),
      max_iterations: parseInt($("cont-iterations").value, 10),
      use_default_masks: $("cont-defaults").checked,
      masks: state.options ? state.options.masks : [],
      added_points: state.options ? state.options.added_points : [],
    };
  }

  async function fit(changes) {
    const payload = Object.assign(formOptions(), changes || {});
    try {
      const options = await post("normalize", payload);
      const result = await get("api/order/" + state.order);
      await embed("order-plot", result.item, "order-xrange");
      showOptions(options);
      say("continuum of order " + state.order + " fitted");
    } catch (error) {
      say(error.message, true);
    }
  }

  window.photonpipeTap = function (x, y) {
    if (!state.options || document.querySelector(".workbench").dataset.readOnly === "true") return;
    if (state.mode === "point") {
      fit({ added_points: state.options.added_points.concat([[x, y, 1.0]]) });
    } else if (state.mode === "remove") {
      const points = state.options.added_points;
      if (!points.length) { say("no added point to remove"); return; }
      let best = 0;
      points.forEach(function (p, i) { if (Math.abs(p[0] - x) < Math.abs(points[best][0] - x)) best = i; });
      fit({ added_points: points.filter(function (_, i) { return i !== best; }) });
    } else if (state.mode === "mask") {
      if (state.maskStart === null) {
        state.maskStart = x;
        say("mask starts at " + fmt(x, 2) + " Å: tap the other end");
      } else {
        const range = [Math.min(state.maskStart, x), Math.max(state.maskStart, x)];
        state.maskStart = null;
        fit({ masks: state.options.masks.concat([range]) });
      }
    }
  };

  // --- lines ---------------------------------------------------------------------------------

  function status(row) {
    const parts = [row.acceptable ? "accepted" : "rejected"];
    if (row.is_limit) parts.push("upper limit " + fmt(row.upper_limit, 1));
    return parts.join(", ");
  }

  function showLines(lines) {
    state.lines = lines;
    const body = $("lines").tBodies[0];
    body.innerHTML = "";
    const filter = $("line-filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    lines.forEach(function (row) {
      const tr = document.createElement("tr");
      tr.dataset.key = row.key;
      tr.classList.toggle("rejected", !row.acceptable);
      tr.classList.toggle("limit", row.is_limit);
      tr.classList.toggle("selected", row.key === state.line);
      [fmt(row.wavelength, 3), fmt(row.species, 1), fmt(row.expot, 2), fmt(row.loggf, 3), fmt(row.ew, 1),
       fmt(row.ew_uncertainty, 1), status(row), row.user_comment || ""].forEach(function (text) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      const content = tr.textContent.toLowerCase();
      tr.hidden = !filter.every(function (w) { return content.includes(w); });
      if (!tr.hidden) shown += 1;
      tr.addEventListener("click", function () { loadLine(row.key); });
      body.appendChild(tr);
    });
    const accepted = lines.filter(function (r) { return r.acceptable; }).length;
    $("line-counts").textContent = lines.length + " lines, " + accepted + " accepted" +
      (filter.length ? ", " + shown + " shown" : "");
  }

  async function loadLine(key) {
    state.line = key;
    showLines(state.lines);
    try {
      const detail = await get("api/line/" + encodeURIComponent(key));
      showLine(detail);
      await embed("line-plot", detail.item, null);
    } catch (error) {
      say(error.message, true);
    }
  }

  function showLine(detail) {
    const row = detail.line;
    $("line-info").textContent = fmt(row.wavelength, 3) + " Å, species " + fmt(row.species, 1) +
      ", χ " + fmt(row.expot, 2) + " eV, log gf " + fmt(row.loggf, 3) + ": EW " + fmt(row.ew, 1) +
      " ± " + fmt(row.ew_uncertainty, 1) + " mÅ, FWHM " + fmt(row.fwhm, 3) + " Å, χ² " +
      fmt(detail.chi2, 1) + " / " + detail.dof + " dof; " + status(row) +
      (row.comments.length ? "; " + row.comments.join("; ") : "");
    $("line-info").dataset.key = row.key;
    $("comment").value = row.user_comment || "";
    const index = state.lines.findIndex(function (r) { return r.key === row.key; });
    if (index >= 0) { state.lines[index] = row; showLines(state.lines); }
  }

  async function review(changes) {
    if (!state.line) { say("choose a line first", true); return; }
    try {
      const detail = await post("review", Object.assign({ line: state.line }, changes));
      showLine(detail);
      await embed("line-plot", detail.item, null);
      say("line " + fmt(detail.line.wavelength, 3) + " Å: " + status(detail.line));
    } catch (error) {
      say(error.message, true);
    }
  }

  async function refit(lines) {
    try {
      const result = await post("refit", {
        lines: lines, profile: $("refit-profile").value, window: parseFloat($("refit-window").value),
      });
      showLines(result.lines);
      say("re-fitted " + result.refitted + " line(s)");
      if (state.line) await loadLine(state.line);
    } catch (error) {
      say(error.message, true);
    }
  }

  // --- summary and saving --------------------------------------------------------------------

  async function loadSummary() {
    const summary = await get("api/summary");
    const s = summary.summary;
    $("session-summary").textContent = s.orders + " orders (" + s.normalized_orders + " normalised), " +
      "RV applied " + fmt(s.rv_applied, 2) + " km/s, " + s.ew_measurements + " EW measurements, input " +
      s.input_spectra.join(", ");
    const select = $("order-select");
    select.innerHTML = "";
    summary.orders.forEach(function (o) {
      const option = document.createElement("option");
      option.value = o.index;
      option.textContent = o.index + ": " + fmt(o.range[0], 1) + "–" + fmt(o.range[1], 1) + " Å" +
        (o.discarded ? " (discarded)" : "") + (o.normalized ? "" : " (not normalised)");
      select.appendChild(option);
    });
    $("save-name").value = summary.suggested_name;
    showLines(summary.lines);
    return summary;
  }

  async function save() {
    try {
      const result = await post("save", { filename: $("save-name").value });
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = base + "download/" + encodeURIComponent(result.download);
      a.textContent = result.saved;
      li.appendChild(document.createTextNode("saved "));
      li.appendChild(a);
      $("saved").appendChild(li);
      say("saved " + result.path);
      const summary = await get("api/summary");
      $("save-name").value = summary.suggested_name;
    } catch (error) {
      say(error.message, true);
    }
  }

  document.addEventListener("DOMContentLoaded", async function () {
    busy(true);
    $("order-select").addEventListener("change", function (e) { loadOrder(parseInt(e.target.value, 10)); });
    $("fit-continuum").addEventListener("click", function () { fit({}); });
    $("mask-add").addEventListener("click", function () {
      const a = parseFloat($("mask-start").value), b = parseFloat($("mask-end").value);
      if (!(a < b)) { say("a mask needs start < end", true); return; }
      fit({ masks: state.options.masks.concat([[a, b]]) });
    });
    document.querySelectorAll("button.mode").forEach(function (button) {
      button.addEventListener("click", function () {
        state.mode = button.dataset.mode;
        state.maskStart = null;
        document.querySelectorAll("button.mode").forEach(function (b) { b.classList.toggle("active", b === button); });
      });
    });
    $("accept").addEventListener("click", function () { review({ acceptable: true }); });
    $("reject").addEventListener("click", function () { review({ acceptable: false }); });
    $("limit").addEventListener("click", function () { review({ upper_limit: true }); });
    $("detection").addEventListener("click", function () { review({ upper_limit: false }); });
    $("comment-save").addEventListener("click", function () { review({ comment: $("comment").value }); });
    $("refit-line").addEventListener("click", function () {
      if (state.line) refit([state.line]); else say("choose a line first", true);
    });
    $("refit-all").addEventListener("click", function () { refit(null); });
    $("line-filter").addEventListener("input", function () { showLines(state.lines); });
    $("save").addEventListener("click", save);
    try {
      const summary = await loadSummary();
      const first = summary.orders.find(function (o) { return !o.discarded; }) || summary.orders[0];
      if (first) { $("order-select").value = first.index; await loadOrder(first.index); }
      document.body.dataset.ready = "true";
    } catch (error) {
      say(error.message, true);
    } finally {
      busy(false);
    }
  });
})();
