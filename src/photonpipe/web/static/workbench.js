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

  // --- abundances and stellar parameters ---------------------------------------------------

  const NAMES = ["teff", "logg", "vt", "feh"];

  function describeSolve(r) {
    return r.method + ": Teff " + fmt(r.teff, 0) + " ± " + fmt(r.teff_error, 0) + " K, log g " +
      fmt(r.logg, 2) + " ± " + fmt(r.logg_error, 2) + ", vt " + fmt(r.vt, 2) + " ± " +
      fmt(r.vt_error, 2) + " km/s, [M/H] " + fmt(r.feh, 2) + " ± " + fmt(r.feh_error, 2) +
      " (" + r.fe1.n + " Fe I, " + r.fe2.n + " Fe II lines; " +
      (r.converged ? "converged" : "NOT converged (" + r.message + ")") + "); the solve's balance: " +
      "Fe I slope " + fmt(r.conditions.slope_excitation_potential, 4) + " dex/eV against EP, " +
      fmt(r.conditions.slope_reduced_ew, 4) + " against reduced EW, Fe II − Fe I " +
      fmt(r.conditions.fe2_minus_fe1, 3) + " dex";
  }

  function showSpecies(section) {
    const body = $("species").tBodies[0];
    body.innerHTML = "";
    if (!section) {
      $("abundance-info").textContent = "No abundances yet: solve, or compute them at the adopted parameters.";
      return;
    }
    Object.keys(section.species).forEach(function (key) {
      const e = section.species[key];
      const tr = document.createElement("tr");
      tr.dataset.species = key;
      const total = e.total_error === undefined ? e.error : e.total_error;
      const cells = e.n === 0 ? [key, "0", "< " + fmt(e.upper_limit, 2), "", "", "", ""] :
        [key, String(e.n), fmt(e.mean, 2), fmt(e.std, 2), fmt(total, 2), fmt(e.x_h, 2), fmt(e.x_fe, 2)];
      cells.forEach(function (text) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    const p = section.parameters;
    $("abundance-info").textContent = "at Teff " + fmt(p.teff, 0) + " K, log g " + fmt(p.logg, 2) +
      ", vt " + fmt(p.vt, 2) + " km/s, [M/H] " + fmt(p.feh, 2) + " (" + section.parameters_source +
      "); solar: " + section.solar_reference + "; " + section.x_fe_reference;
  }

  async function showParameters(view) {
    const note = $("physics-note");
    if (view.codes) {
      const have = Object.keys(view.codes).filter(function (k) { return view.codes[k]; });
      note.classList.toggle("physics-problem", !have.length);
      note.textContent = have.length ?
        "radiative-transfer code: " + view.code_setting + " (available here: " + have.join(", ") + ")" :
        "No radiative-transfer code is available yet: the solve builds MOOG on first use where " +
        "gfortran is installed (`photonpipe session install-moog`), or pip install photonpipe[sme].";
    }
    const result = $("solve-result");
    result.classList.remove("converged", "not-converged");
    if (view.adopted) {
      result.textContent = "adopted: " + describeSolve(view.adopted) + "; " + view.adopted_lines +
        " lines used, " + view.adopted.clipped_lines + " clipped";
      result.classList.add(view.adopted.converged ? "converged" : "not-converged");
      result.dataset.report = JSON.stringify(view.adopted);
    } else {
      result.textContent = "No stellar parameters yet.";
      delete result.dataset.report;
    }
    showSpecies(view.abundances);
    const slopes = view.slopes;
    $("slopes").textContent = slopes.ep ?
      "Fe I slopes (" + slopes.n + " lines" + (view.slopes_from_solved_lines ? " used in the solve" : "") +
      "): " + Number(slopes.ep.slope).toFixed(4) + " dex/eV against excitation potential, " +
      Number(slopes.rw.slope).toFixed(4) + " dex/dex against reduced EW" : "";
    $("slopes").dataset.ep = slopes.ep ? slopes.ep.slope : "";
    $("slopes").dataset.rw = slopes.rw ? slopes.rw.slope : "";
    if (view.item) {
      await embed("abundance-plot", view.item, null);
    } else {
      $("abundance-plot").textContent = "No line has an abundance yet.";
      $("abundance-plot").dataset.ready = "empty";
    }
  }

  async function loadParameters() {
    await showParameters(await get("api/parameters"));
  }

  function readParameters(prefix) {
    const values = {};
    NAMES.forEach(function (n) {
      const text = $(prefix + n).value.trim();
      if (text !== "") values[n] = parseFloat(text);
    });
    return values;
  }

  async function solve() {
    const initial = readParameters("start-");
    const given = Object.keys(initial).length;
    if (given && given !== 4) {
      say("give all four starting values or none", true);
      return;
    }
    const adopt = $("solve-adopt").checked;
    say("solving (each step runs the radiative-transfer code)…");
    const started = performance.now();
    try {
      const result = await post("solve", {
        initial: given ? initial : null, fixed: readParameters("fix-"), adopt: adopt, abundances: adopt,
      });
      const seconds = (performance.now() - started) / 1000;
      document.body.dataset.solveSeconds = seconds.toFixed(2);
      await showParameters(Object.assign({}, result.view, { codes: null }));
      const report = $("solve-result");
      report.dataset.lastReport = JSON.stringify(result.report);
      if (!adopt) report.textContent = "solved, not adopted: " + describeSolve(result.report);
      say("solved in " + seconds.toFixed(1) + " s: " + describeSolve(result.report));
    } catch (error) {
      say(error.message, true);
    }
  }

  async function abundances() {
    try {
      const result = await post("abundances", {});
      await showParameters(Object.assign({}, result.view, { codes: null }));
      say("abundances of " + result.report.line_hashes.length + " lines computed");
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
    $("solve").addEventListener("click", solve);
    $("abundances").addEventListener("click", abundances);
    try {
      const summary = await loadSummary();
      const first = summary.orders.find(function (o) { return !o.discarded; }) || summary.orders[0];
      if (first) { $("order-select").value = first.index; await loadOrder(first.index); }
      await loadParameters();
      document.body.dataset.ready = "true";
    } catch (error) {
      say(error.message, true);
    } finally {
      busy(false);
    }
  });
})();
