/* The presiding officer's screen: renders the state JSON (display.build_state) and keeps it live
   over Server-Sent Events. Recovery: on any stream error we reopen it ourselves (after 1, 2,
   then every 4 s), also when it goes silent (no state or ping for WATCHDOG_MS), re-fetch
   /state on every reopen, and show a small banner while the connection is down. All text comes from the page's labels (t(...) on the server). */
(function () {
  "use strict";

  var root = document.getElementById("display");
  if (!root) return;
  var L = JSON.parse(document.getElementById("display-labels").textContent);
  var stateUrl = root.dataset.stateUrl, eventsUrl = root.dataset.eventsUrl, loginUrl = root.dataset.loginUrl;
  var banner = document.getElementById("conn-banner");

  var WATCHDOG_MS = 40000;      // two missed heartbeats (15 s each) and a margin
  var BANNER_GRACE_MS = 1500;   // a planned reconnect is quicker than this: no banner flash
  var state = null, clockOffset = 0, es = null, lastData = 0, broken = false;
  var bannerTimer = null, reopenTimer = null, reopenDelay = 1000;

  function fmt(s, vals) {
    return String(s).replace(/\{(\w+)\}/g, function (_, k) { return vals[k] == null ? "" : vals[k]; });
  }
  // seats left unfilled: a 另行选举 in this sitting, or saved for the one it names
  function unfilledText(r) {
    return r.another_in ? fmt(L.unfilled_next, { n: r.unfilled, s: r.another_in }) : fmt(L.unfilled, { n: r.unfilled });
  }
  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function $(id) { return document.getElementById(id); }
  function show(el, on) { if (el) el.hidden = !on; }
  function text(el, s) { if (el) el.textContent = s == null ? "" : String(s); }

  // --- rendering -------------------------------------------------------------------------

  function render(s) {
    state = s;
    if (s.now) clockOffset = Date.parse(s.now) - Date.now();
    root.dataset.mode = s.mode;
    root.dataset.seq = s.seq;
    document.querySelectorAll("[data-f]").forEach(function (el) {
      var v = get(s, el.dataset.f);
      text(el, v == null ? "" : v);
    });
    show($("view-title"), s.mode === "title");
    show($("view-checkin"), s.mode === "checkin");
    // "counting": closed, not tallied; "awaiting": tallied, not yet published (公布) — both
    // show only how many ballots came back, never how anyone voted.
    var voteView = s.mode === "voting" || s.mode === "counting" || s.mode === "awaiting";
    show($("view-voting"), voteView);
    show($("view-result"), s.mode === "result");
    renderCheckin(s.attendance);
    renderVote(voteView ? s.vote : null, s.mode);
    renderResult(s.mode === "result" ? s.result : null, s.mode === "result" ? s.record : null);
    tick();
  }

  function renderCheckin(a) {
    var q = $("quorum");
    q.dataset.ok = a && a.quorum_met ? "yes" : "no";
  }

  function secretTag(el, secret) { text(el, secret ? L.secret : L.named); }

  function roundTag(el, n, stage) {
    show(el, n > 1);
    text(el, n > 1 ? fmt(L["round_" + stage] || L.round, { n: n }) : "");  // elections name the round
  }

  function renderVote(v, mode) {
    var sec = $("view-voting");
    sec.querySelectorAll("[data-show]").forEach(function (el) { show(el, el.dataset.show === mode); });
    if (!v) return;
    roundTag($("v-round"), v.round, v.stage);
    secretTag($("v-secret"), v.secret);
    var runoff = $("v-runoff");
    show(runoff, v.runoff_titles && v.runoff_titles.length > 0);
    text(runoff, v.runoff_titles && v.runoff_titles.length
      ? fmt(L.runoff_between, { titles: v.runoff_titles.join("、"), k: v.places }) : "");
    var hand = v.voted == null, set = v.set && v.set.length > 1;
    sec.classList.toggle("set", !!set);
    if (set) text(sec.querySelector(".item-title"), v.set.map(function (x) { return x.title; }).join(" · "));
    renderVoteSet(set ? v.set : null, mode);
    show($("v-count"), !hand && !set);
    show($("v-handcount"), hand);
    var paper = v.channel === "paper";
    text($("v-count-label"), paper ? L.voted_paper : L.voted_terminal);
    // 已表决 R of 实到 P, as on the console; after the close, 收回 of 发出 (未按 = I − R).
    text($("v-issued-label"), mode !== "voting"
      ? fmt(L.returned_final, { r: v.voted, n: v.issued })
      : paper ? fmt(L.issued_paper, { n: v.issued }) : fmt(L.not_voted_yet, { n: v.not_voted_yet }));
    notIssued($("v-not-issued"), v.not_issued);
    var pct = v.present ? Math.min(100, Math.round(100 * v.voted / v.present)) : 0;
    $("v-fill").style.width = pct + "%";
    show($("v-timer"), !!v.closes_at && mode === "voting");
  }

  // A ballot set: one row per election in the ballot's order (主任, 副主任, 委员), each with
  // its own 已表决 R / 实到 P (its own casts), never how anyone voted.
  function renderVoteSet(list, mode) {
    var box = $("v-set");
    box.textContent = "";
    show(box, !!list);
    if (!list) return;
    list.forEach(function (x) {
      var li = document.createElement("li"), bar = document.createElement("div"), fill = document.createElement("div");
      li.dataset.key = x.key;
      li.appendChild(cell("span", x.title, "s-title"));
      var hand = x.voted == null;
      var count = cell("span", hand ? "" : x.voted, "s-num voted");
      if (!hand) count.appendChild(cell("span", "/" + x.present, "of"));
      li.appendChild(count);
      bar.className = "v-progress";
      fill.className = "fill";
      fill.style.width = (x.present && !hand ? Math.min(100, Math.round(100 * x.voted / x.present)) : 0) + "%";
      bar.appendChild(fill);
      li.appendChild(bar);
      li.appendChild(cell("span", hand ? "" : mode !== "voting" ? fmt(L.returned_final, { r: x.voted, n: x.issued })
        : x.channel === "paper" ? fmt(L.issued_paper, { n: x.issued }) : fmt(L.not_voted_yet, { n: x.not_voted_yet }), "sub"));
      box.appendChild(li);
    });
  }

  // Present members whose tablet took no ballot (P − I): on a line of their own, never in 未按.
  function notIssued(el, n) {
    show(el, n > 0);
    text(el, n > 0 ? fmt(L.not_issued, { n: n }) : "");
  }

  function cell(tag, content, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = content == null ? "" : String(content);
    return el;
  }

  // Rows per column: one column up to 12 rows, two side by side beyond (up to 20 projects).
  var ONE_COLUMN_MAX = 12;

  function renderTable(r, rows, into) {
    var box = into || $("r-tables");
    box.textContent = "";
    if (r.kind === "evaluation") { window.DisplayEvaluation.render(box, r, L); return; }
    var projects = r.kind === "livelihood_projects";
    var election = r.kind === "election";  // 得票 and 当选 / 未当选; write-ins marked 另选他人
    var hasRunoff = projects && rows.some(function (x) { return x.runoff_for != null; });
    var hasVoid = rows.some(function (x) { return x["void"]; });  // paper: void marks (无效)
    var cols = projects && rows.length > ONE_COLUMN_MAX ? 2 : 1;
    var per = Math.ceil(rows.length / cols);
    box.className = (into ? "s-table " : "r-tables ") + "cols-" + cols;
    box.style.setProperty("--rows", String(per));
    for (var c = 0; c < cols; c++) {
      var table = document.createElement("table");
      table.className = "r-table " + (projects ? "projects" : "nominees");
      var thead = document.createElement("thead"), tbody = document.createElement("tbody");
      var head = document.createElement("tr");
      if (projects) head.appendChild(cell("th", L.col_rank, "n"));
      head.appendChild(cell("th", projects ? L.col_project : election ? L.col_candidate : L.col_nominee));
      if (projects) head.appendChild(cell("th", "", "barcol"));
      head.appendChild(cell("th", election ? L.col_votes : L.col_for, "n"));
      if (!projects) { head.appendChild(cell("th", L.col_against, "n")); head.appendChild(cell("th", L.col_abstain, "n")); }
      if (hasVoid) head.appendChild(cell("th", L.col_void, "n"));
      if (hasRunoff) head.appendChild(cell("th", L.col_runoff, "n"));
      head.appendChild(cell("th", L.col_outcome, "o"));
      thead.appendChild(head);
      rows.slice(c * per, (c + 1) * per).forEach(function (x) {
        var tr = document.createElement("tr");
        tr.dataset.key = x.key;
        if (projects) tr.appendChild(cell("td", x.rank || "", "n rank"));
        var title = cell("td", x.write_in ? x.title + "（" + L.write_in + "）" : x.title, "title");
        title.title = x.title;
        tr.appendChild(title);
        if (projects) {  // 赞成 / 反对 / 弃权 / 无效 as one bar, as for an evaluation's subjects
          var b = cell("td", "", "barcol");
          b.appendChild(window.DisplayEvaluation.segments([[x["for"], "best"], [x.against, "worst"],
                                                           [x.abstain, "abstain"], [x["void"], "void"]]));
          tr.appendChild(b);
        }
        tr.appendChild(cell("td", x["for"], "n"));
        if (!projects) { tr.appendChild(cell("td", x.against == null ? "—" : x.against, "n")); tr.appendChild(cell("td", x.abstain == null ? "—" : x.abstain, "n")); }
        if (hasVoid) tr.appendChild(cell("td", x["void"], "n"));
        if (hasRunoff) tr.appendChild(cell("td", x.runoff_for == null ? "" : x.runoff_for, "n"));
        var verdict, vcls;
        if (r.status === "void") { verdict = ""; vcls = ""; }
        else if (projects) {
          // passed the threshold but ranked below the places: 未入选, not 通过
          verdict = x.selected ? "★ " + L.selected : x.tied ? L.tied : x.passed ? L.not_selected : L.not_passed;
          vcls = x.selected ? "sel" : x.tied ? "warn" : x.passed ? "dim" : "bad";
        } else if (election) {
          verdict = x.elected ? "★ " + L.elected : x.tied ? L.tied : L.not_elected;
          vcls = x.elected ? "sel" : x.tied ? "warn" : "dim";
        } else { verdict = x.passed ? L.passed : L.not_passed; vcls = x.passed ? "ok" : "bad"; }
        tr.appendChild(cell("td", verdict, "o " + vcls));
        if ((projects && x.selected) || (election && x.elected)) tr.className = "selected";
        tbody.appendChild(tr);
      });
      table.appendChild(thead);
      table.appendChild(tbody);
      box.appendChild(table);
    }
  }

  // A ballot set's results, one column per election in the ballot's order (主任, 副主任, 委员),
  // each with its own figures and 当选 / 未当选; one not yet published says so, with no figure.
  function renderResultSet(list) {
    var box = $("r-tables");
    box.textContent = "";
    box.className = "r-tables set cols-" + list.length;
    box.style.setProperty("--rows", String(Math.max.apply(null, list.map(function (x) { return (x.nominees || []).length; }))));
    list.forEach(function (x) {
      var col = document.createElement("section"), head = document.createElement("h2");
      col.className = "s-col";
      col.dataset.key = x.key;
      head.textContent = x.title;
      col.appendChild(head);
      if (x.pending) {
        col.appendChild(cell("p", x.status === "closed" ? L.set_counting : L.set_pending, "s-note"));
        box.appendChild(col);
        return;
      }
      var notes = [];
      if (x.stage && x.rounds > 1) notes.push(fmt(L["round_" + x.stage] || L.round, { n: x.rounds }));
      notes.push(fmt(L.elected_of, { s: x.elected_count, k: x.places }));
      if (x.threshold_votes != null) notes.push(fmt(L.threshold_elect, { n: x.threshold_votes }));
      notes.push(fmt(L.set_valid, { v: x.valid, i: x.invalid }));
      col.appendChild(cell("p", notes.join("　·　"), "s-note"));
      if (x.status === "runoff_pending") col.appendChild(cell("p", fmt(L.runoff_pending, { n: x.tied_count, k: x.runoff_places }), "s-note warn"));
      else if (x.unfilled) col.appendChild(cell("p", unfilledText(x), "s-note warn"));
      var t = document.createElement("div");
      col.appendChild(t);
      renderTable(x, x.nominees || [], t);
      if (x.record) {  // this election's own signed record: its QR and key fingerprint
        var rec = document.createElement("div"), code = document.createElement("div");
        rec.className = "s-record";
        rec.dataset.recordId = x.record.id;
        code.className = "s-qr";
        code.innerHTML = x.record.qr_svg;
        rec.appendChild(code);
        rec.appendChild(cell("p", L.signed_election + "　" + x.record.key_fingerprint, "s-rec-text mono"));
        col.appendChild(rec);
      }
      box.appendChild(col);
    });
  }

  // Shrink a one-line text until it fits its box (down to `min` of its size); past that the
  // CSS ellipsis applies. Used for project titles and an item title above a table.
  function fitText(el, min) {
    el.style.fontSize = "";
    for (var f = 0.95; f >= min - 1e-9 && el.scrollWidth > el.clientWidth + 1; f -= 0.05) el.style.fontSize = f + "em";
  }

  function fitAll() {
    var view = $("view-result");
    var title = view.querySelector(".item-title");
    if (view.classList.contains("tables") && !view.hidden) fitText(title, 0.6); else title.style.fontSize = "";
    view.querySelectorAll(".r-table td.title").forEach(function (td) { fitText(td, 0.7); });
  }
  window.addEventListener("resize", fitAll);

  function renderResult(r, rec) {
    var outcome = $("r-outcome"), notes = $("r-notes"), view = $("view-result");
    $("r-tables").textContent = "";
    show($("r-record"), false);
    if (!r) { text(outcome, ""); text(notes, ""); text($("r-qr"), ""); delete $("r-qr").dataset.url; return; }
    roundTag($("r-round"), r.rounds, r.stage);
    var election = r.kind === "election";
    text($("r-tag"), r.kind === "evaluation" ? L.evaluation_tag : election ? L.election_tag : L.result_tag);
    secretTag($("r-secret"), r.secret);
    var isRes = r.kind === "resolution";
    var noVote = r.status === "quorum_not_met";
    $("r-figures").querySelectorAll(".tile").forEach(function (t) {
      var k = t.dataset.kind, f = t.querySelector("[data-f]").dataset.f;
      var on = k === "resolution" ? isRes : k === "table" ? !isRes : true;
      if (noVote && f !== "result.members" && f !== "result.present") on = false;
      show(t, on);
    });
    $("r-figures").className = "tiles " + (noVote ? "two" : isRes ? "six" : "five");

    // Notes: void marks, invalid and refused ballots, the threshold, selections, runoff.
    var n = [];
    if (!noVote) {
      if (r.threshold_votes != null) n.push(fmt(election ? L.threshold_elect : L.threshold, { n: r.threshold_votes }));
      if (r.invalid) n.push(fmt(L.invalid, { n: r.invalid }));
      if (isRes && r.motion && r.motion["void"]) n.push(fmt(L.void_marks, { n: r.motion["void"] }));
      if (r.refused) n.push(fmt(L.refused, { n: r.refused }));
      if (r.kind === "evaluation") n.push(window.DisplayEvaluation.note(r, L));
      if (r.kind === "livelihood_projects" && r.status !== "void")
        n.push(fmt(L.selected_of, { s: r.selected_count, k: r.places }));
      if (election && r.status !== "void")
        n.push(fmt(L.elected_of, { s: r.elected_count, k: r.places }));
      if (r.runoff) n.push(fmt(L.runoff_done, { i: r.runoff.issued, r: r.runoff.returned }));
    }
    text(notes, n.join("　·　"));
    notIssued($("r-not-issued"), noVote ? 0 : r.not_issued);

    // The outcome line.
    var o = null, cls = "";
    if (r.status === "void") { o = L["void"]; cls = "bad"; }
    else if (noVote) { o = L.quorum_not_met; cls = "bad"; }
    else if (isRes) { o = r.passed ? L.passed : L.not_passed; cls = r.passed ? "ok big" : "bad big"; }
    else if (r.status === "runoff_pending") { o = fmt(L.runoff_pending, { n: r.tied_count, k: r.runoff_places }); cls = "warn"; }
    else if (r.shortfall) { o = fmt(L.shortfall, { n: r.shortfall }); cls = "warn"; }
    else if (r.unfilled) { o = unfilledText(r); cls = "warn"; }
    show(outcome, !!o);
    text(outcome, o || "");
    outcome.className = "outcome " + cls;

    // The table of nominees or the ranked projects; a ballot set's elections side by side.
    var rows = r.kind === "appointment" || r.kind === "election" ? r.nominees
      : r.kind === "livelihood_projects" ? r.projects : r.kind === "evaluation" ? r.subjects : null;
    var set = r.set && r.set.length > 1 && !noVote;
    var tableOn = !!rows && !noVote;
    show($("r-tables"), tableOn);
    view.classList.toggle("tables", tableOn);
    view.classList.toggle("set", !!set);
    if (set) {
      text(view.querySelector(".item-title"), r.set.map(function (x) { return x.title; }).join(" · "));
      text(notes, "");  // each election's own notes and outcome are in its column
      show(outcome, false);
      show($("r-round"), false);
      renderResultSet(r.set);
    } else if (tableOn) renderTable(r, rows);

    // (d) The signed record: fingerprint, audit head and QR of /verify/<id> (a ballot set's
    // elections each have theirs under their column instead).
    if (set) rec = null;
    show($("r-record"), !!rec);
    view.classList.toggle("with-record", !!rec);
    if (rec) {
      var qr = $("r-qr");
      if (qr.dataset.url !== rec.verify_url) { qr.innerHTML = rec.qr_svg; qr.dataset.url = rec.verify_url; }
      text($("r-rec-title"), election ? L.signed_election : r.kind === "evaluation" ? L.signed_evaluation : L.signed_result);
      text($("r-fp"), rec.key_fingerprint);
      text($("r-head"), (rec.audit_seq != null ? "#" + rec.audit_seq + " · " : "") + rec.audit_head);
      text($("r-url"), rec.verify_url);
      $("r-record").dataset.recordId = rec.id;
    } else { text($("r-qr"), ""); delete $("r-qr").dataset.url; }
    fitAll();
  }

  // --- clock and countdown -----------------------------------------------------------------

  function two(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var now = new Date(Date.now() + clockOffset);
    text($("d-clock"), two(now.getHours()) + ":" + two(now.getMinutes()) + ":" + two(now.getSeconds()));
    var v = state && state.mode === "voting" ? state.vote : null;
    if (v && v.closes_at) {
      var left = Math.max(0, Math.ceil((Date.parse(v.closes_at) - now.getTime()) / 1000));
      var el = $("v-remaining");
      text(el, left > 0 ? two(Math.floor(left / 60)) + ":" + two(left % 60) : L.time_up);
      el.classList.toggle("urgent", left <= 10);
    }
  }
  setInterval(tick, 250);

  // --- live connection -----------------------------------------------------------------------

  function alive() {
    lastData = Date.now();
    reopenDelay = 1000;
    if (bannerTimer) { clearTimeout(bannerTimer); bannerTimer = null; }
    if (broken) { broken = false; show(banner, false); root.dataset.connection = "ok"; }
  }

  function trouble() {
    root.dataset.connection = "reconnecting";
    if (!broken && !bannerTimer) {
      bannerTimer = setTimeout(function () { bannerTimer = null; broken = true; show(banner, true); }, BANNER_GRACE_MS);
    }
  }

  function refetch() {
    fetch(stateUrl, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) {  // the login expired: go and log in again, then come back
          location.href = loginUrl + "?next=" + encodeURIComponent(location.pathname + location.search);
          return null;
        }
        return r.ok ? r.json() : null;
      })
      .then(function (s) { if (s) { render(s); alive(); } })
      .catch(function () { /* still offline; the stream retries */ });
  }

  function open() {
    if (es) es.close();
    if (reopenTimer) { clearTimeout(reopenTimer); reopenTimer = null; }
    var first = true;
    es = new EventSource(eventsUrl);
    es.addEventListener("state", function (e) { render(JSON.parse(e.data)); alive(); });
    es.addEventListener("ping", alive);
    es.addEventListener("bye", function () { open(); });  // planned end: reconnect at once
    es.onopen = function () {
      if (!first) refetch();  // (EventSource reopened by itself)
      first = false;
    };
    es.onerror = function () {
      trouble();
      // Our own schedule, not the browser's: its retries may back off far longer than a
      // screen in a hall should stay stale (and stop altogether on some errors).
      reopenLater();
    };
  }

  function reopenLater() {
    if (reopenTimer) return;
    reopenTimer = setTimeout(function () { reopenTimer = null; open(); refetch(); }, reopenDelay);
    reopenDelay = Math.min(reopenDelay * 2, 4000);  // back within seconds of the server
  }

  // A connection that died without closing (cable pulled, Wi-Fi gone) sends nothing at all.
  setInterval(function () {
    if (Date.now() - lastData > WATCHDOG_MS) { trouble(); lastData = Date.now(); open(); refetch(); }
  }, 5000);
  window.addEventListener("online", function () { open(); refetch(); });
  // The browser says its network is gone: drop the stream (a half-dead one could still
  // deliver a late ping and hide the banner) and wait for "online" or the watchdog.
  window.addEventListener("offline", function () {
    if (es) { es.close(); es = null; }
    trouble();
  });

  window.BallotDisplay = { render: render };  // for layout checks in tests
  render(JSON.parse(document.getElementById("display-initial").textContent));
  lastData = Date.now();
  open();
})();
