// photonpipe light-curve archive pages: table search and sort, Bokeh plots, quantity and
// bin-width controls. No network access: everything the page needs is in the page.
"use strict";

(function () {
  function cellValue(row, index, numeric) {
    const text = row.cells[index] ? row.cells[index].textContent.trim() : "";
    if (!numeric) return text.toLowerCase();
    const value = parseFloat(text);
    return Number.isFinite(value) ? value : -Infinity;
  }

  function makeSortable(table) {
    const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
    headers.forEach(function (th, index) {
      th.classList.add("sort");
      th.title = "sort";
      th.addEventListener("click", function () {
        const numeric = th.dataset.type === "number";
        const ascending = th.dataset.sorted !== "ascending";
        headers.forEach(function (h) { delete h.dataset.sorted; });
        th.dataset.sorted = ascending ? "ascending" : "descending";
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (a, b) {
          const x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
          return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  function search(text) {
    const words = text.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0, total = 0;
    document.querySelectorAll("table.searchable tbody tr").forEach(function (row) {
      const content = row.textContent.toLowerCase();
      const match = words.every(function (w) { return content.includes(w); });
      row.hidden = !match;
      if (row.closest("table").id === "datasets") { total += 1; if (match) shown += 1; }
    });
    const count = document.getElementById("search-count");
    if (count) count.textContent = words.length ? shown + " of " + total + " datasets" : "";
  }

  function formatTime(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
  }

  window.photonpipeZoomed = function (name, start, end) {
    const label = document.getElementById("zoom-" + name);
    if (label) {
      label.textContent = "shown: " + formatTime(start) + " – " + formatTime(end) +
        " (" + ((end - start) / 1000).toFixed(0) + " s)";
      label.dataset.start = start;
      label.dataset.end = end;
    }
  };

  const documents = {};

  function model(name, suffix) {
    const doc = documents[name];
    return doc ? doc.get_model_by_name(name + "-" + suffix) : null;
  }

  function update(controls, variants) {
    const name = controls.dataset.plot;
    const quantity = controls.querySelector("select.quantity");
    const binning = controls.querySelector("select.binning");
    const data = variants[quantity.value][binning.value];
    const source = model(name, "source");
    if (!source) return;
    const column = function (values) {
      return values.map(function (v) { return v === null ? NaN : v; });
    };
    source.data = { x: column(data.x), y: column(data.y), lo: column(data.lo), hi: column(data.hi) };
    const plot = model(name, "curve");
    if (plot) {
      const label = quantity.options[quantity.selectedIndex].dataset.label;
      plot.left.forEach(function (axis) { axis.axis_label = label; });
    }
    controls.dataset.shown = quantity.value + "/" + binning.value;
  }

  async function embedPlots() {
    const items = Array.from(document.querySelectorAll("script.bokeh-item"));
    for (const element of items) {
      const target = element.dataset.element;
      const name = target.replace(/^plot-/, "");
      const views = await Bokeh.embed.embed_item(JSON.parse(element.textContent), target);
      documents[name] = Array.from(views.roots || views)[0].model.document;
      document.getElementById(target).dataset.ready = "true";
    }
    document.querySelectorAll("script.variants").forEach(function (element) {
      const variants = JSON.parse(element.textContent);
      const controls = document.querySelector('.controls[data-plot="' + element.dataset.plot + '"]');
      if (!controls) return;
      controls.querySelectorAll("select").forEach(function (select) {
        select.addEventListener("change", function () { update(controls, variants); });
      });
    });
    document.body.dataset.plotsReady = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
    const box = document.getElementById("search");
    if (box) {
      box.addEventListener("input", function () { search(box.value); });
      if (box.value) search(box.value);
    }
    if (document.querySelector("script.bokeh-item")) {
      embedPlots().catch(function (error) {
        document.body.dataset.plotsError = String(error);
        console.error(error);
      });
    }
  });
})();
