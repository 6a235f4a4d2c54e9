// Presiding screen: an evaluation's result (满意度测评, RULES.md §5.5) — per subject a stacked
// bar of its options (best first), 弃权 and 无效, so the hall sees the picture before the
// numbers; then every option's count, the rate and the grade. display.js calls it.
window.DisplayEvaluation = (function () {
  "use strict";

  function cell(tag, content, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = content == null ? "" : String(content);
    return el;
  }

  // Segment colours by rank: the best option green, the worst red, those between amber/yellow.
  function tone(i, n) { return i === 0 ? "best" : i === n - 1 ? "worst" : (i === 1 ? "mid" : "mid2"); }

  // One stacked bar from [[count, tone], …]; also beside the 赞成 counts of a projects vote.
  function segments(parts) {
    var total = parts.reduce(function (a, p) { return a + p[0]; }, 0);
    var el = document.createElement("div");
    el.className = "e-bar";
    parts.forEach(function (p) {
      if (!p[0] || !total) return;
      var s = document.createElement("span");
      s.className = "seg " + p[1];
      s.style.width = (100 * p[0] / total) + "%";  // display only: every figure shown is an integer
      el.appendChild(s);
    });
    return el;
  }

  function bar(x, n) {
    var parts = x.counts.map(function (c, i) { return [c, tone(i, n)]; });
    return segments(parts.concat([[x.abstain, "abstain"], [x["void"], "void"]]));
  }

  function legend(r, L) {
    var el = document.createElement("div");
    el.className = "e-legend";
    var n = r.options.length;
    r.options.forEach(function (o, i) {
      var s = cell("span", o.title, "key " + tone(i, n));
      el.appendChild(s);
    });
    el.appendChild(cell("span", L.col_abstain, "key abstain"));
    return el;
  }

  function render(box, r, L) {
    var n = r.options.length;
    var hasVoid = r.subjects.some(function (x) { return x["void"]; });
    box.className = "r-tables cols-1 evaluation";
    box.style.setProperty("--rows", String(r.subjects.length));
    var wrap = document.createElement("div");
    wrap.className = "e-wrap";
    wrap.appendChild(legend(r, L));
    var table = document.createElement("table");
    table.className = "r-table evaluation";
    var head = document.createElement("tr");
    head.appendChild(cell("th", L.col_subject));
    head.appendChild(cell("th", "", "barcol"));
    r.options.forEach(function (o) { head.appendChild(cell("th", o.title, "n")); });
    head.appendChild(cell("th", L.col_abstain, "n"));
    if (hasVoid) head.appendChild(cell("th", L.col_void, "n"));
    head.appendChild(cell("th", r.rate_name, "n"));
    head.appendChild(cell("th", L.col_grade, "o"));
    var thead = document.createElement("thead"), tbody = document.createElement("tbody");
    thead.appendChild(head);
    r.subjects.forEach(function (x) {
      var tr = document.createElement("tr");
      tr.dataset.key = x.key;
      var title = cell("td", x.title, "title");
      title.title = x.title;
      tr.appendChild(title);
      var b = document.createElement("td");
      b.className = "barcol";
      b.appendChild(bar(x, n));
      tr.appendChild(b);
      x.counts.forEach(function (c) { tr.appendChild(cell("td", c, "n")); });
      tr.appendChild(cell("td", x.abstain, "n"));
      if (hasVoid) tr.appendChild(cell("td", x["void"], "n"));
      tr.appendChild(cell("td", x.rate == null ? "—" : x.rate + "%", "n rate"));
      var g = r.status === "decided" && x.grade_title ? x.grade_title : "";
      tr.appendChild(cell("td", g, "o grade " + (x.grade_rank == null ? "" : tone(x.grade_rank, n))));
      tbody.appendChild(tr);
    });
    table.appendChild(thead);
    table.appendChild(tbody);
    wrap.appendChild(table);
    box.appendChild(wrap);
  }

  function note(r, L) {
    var g = r.grading || {};
    return g.by === "rate_thresholds" ? L.grade_by_rate : L.grade_by_majority;
  }

  return { render: render, note: note, segments: segments };
})();
