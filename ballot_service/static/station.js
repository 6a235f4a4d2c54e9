/* Counting-station page (计票站): a thin client of the station API (openapi.yaml).
 *
 * Every call carries the teller's counting-station credential (Authorization: Bearer …),
 * typed once and kept in sessionStorage: closing the tab logs out, and "switch teller" lets
 * the other teller log in on the same laptop with their own credential. The server decides
 * everything (who may decide a page, two different tellers, the 总监票人 on disagreement);
 * this page only shows and sends. A teller never sees the other's decision before deciding.
 *
 * USB QR scanners type the QR text and Enter into the focused field (keyboard wedge): the
 * desk and the read-by-eye fields submit on Enter.
 */
(function () {
  "use strict";

  var S = JSON.parse(document.getElementById("station-strings").textContent);
  var KEY = "ballotStation.credential";
  var MARKS = ["for", "against", "abstain", "void"];
  var WRITTEN_IN = "a name written on a 另选他人 line: the tellers transcribe it";
  var me = null;

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function cred() { return sessionStorage.getItem(KEY) || ""; }

  function call(method, url, body, type) {
    var headers = { "Authorization": "Bearer " + cred() };
    var payload = body;
    if (body !== undefined && !type) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    if (type) headers["Content-Type"] = type;
    return fetch(url, { method: method, headers: headers, body: payload }).then(function (r) {
      var ct = r.headers.get("Content-Type") || "";
      var read = ct.indexOf("json") >= 0 ? r.json() : r.blob();
      return read.then(function (data) {
        if (!r.ok) {
          var e = (data && data.errors && data.errors[0]) || {};
          var text = (document.documentElement.lang !== "en" && e.message_zh) || e.message || r.status;
          var err = new Error(text + (e.where ? " (" + e.where + ")" : ""));
          err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }

  function reason(r) { return S.reasons[r] || r; }

  // --- login ------------------------------------------------------------------------------
  function showLogin(msg) {
    $("app").hidden = true; $("logout").hidden = true; $("who").textContent = "";
    $("login").hidden = false; $("login-error").textContent = msg || "";
    $("credential").focus();
  }
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("credential").value.trim());
    $("credential").value = "";
    start();
  });
  $("logout").addEventListener("click", function () { sessionStorage.removeItem(KEY); showLogin(""); });

  function start() {
    if (!cred()) { showLogin(""); return; }
    call("GET", "/api/station/me").then(function (m) {
      me = m;
      // a teller's credential is named after them ("计票站 计票人 张三"): say the role and name once
      $("who").textContent = m.session + " · " + (m.holder ? (S.roles[m.teller_role] || "") + " " + m.holder : m.name);
      $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
      refresh();
    }).catch(function (e) { sessionStorage.removeItem(KEY); showLogin(e.message); });
  }

  // --- reconciliation ---------------------------------------------------------------------
  var board = null;
  function refresh() { return Promise.all([loadBoard(), loadQueue()]); }

  function onPaper(i) { return i.channel === "paper" || i.channel === "hybrid"; }

  function loadBoard() {
    return call("GET", "/api/station/board").then(function (b) {
      board = b;
      var head = $("board-table").tHead, body = $("board-table").tBodies[0];
      head.textContent = ""; body.textContent = "";
      var tr = el("tr");
      S.cols.forEach(function (c) { tr.appendChild(el("th", {}, c)); });
      head.appendChild(tr);
      var paper = [];
      var anyPaper = b.items.some(onPaper);
      $("board-table").hidden = !anyPaper;
      none($("board-none"), !anyPaper);
      b.items.filter(onPaper).forEach(function (i) {
        var row = el("tr", { "data-item": i.item_id });
        // a hybrid item: the row is its paper ballots; the tablets' come back apart
        var hybrid = i.returned_by_channel ? " · " + S.hybrid.replace("{n}", i.returned_by_channel.terminal) : "";
        row.appendChild(el("td", {}, i.title + (i.round > 1 ? " (" + i.round + ")" : "") + hybrid));
        ["issued", "returned", "read", "pending", "valid", "invalid", "refused", "rescanned"].forEach(function (k) {
          row.appendChild(el("td", { "class": "num " + k + (k === "pending" && i[k] ? " warn" : "") },
                             i[k] === null ? "—" : i[k]));
        });
        body.appendChild(row);
        paper.push(i.title + "：" + S.printed + " " + i.printed + " = " + S.cols[1] + " " + i.issued + " + " +
                   S.not_handed_out + " " + i.not_handed_out);
      });
      if (b.unread_pending) paper.push(S.unread + "：" + b.unread_pending);
      $("board-paper").textContent = paper.join("；");
      var alerts = $("alerts"); alerts.textContent = "";
      b.alerts.forEach(function (a) { alerts.appendChild(el("p", { "class": "alert" }, S.alert + " · " + a.outcome)); });
      renderSheets();
      renderRecount();
    });
  }

  // An empty section says so (暂无) rather than showing nothing.
  function none(p, on) { p.hidden = !on; }

  function renderRecount() {
    var box = $("recount-items"); box.textContent = "";
    none($("recount-none"), !board.items.some(onPaper));
    board.items.filter(onPaper).forEach(function (i) {
      var b = el("button", { type: "button", "data-item": i.item_id }, S.recount + " · " + i.title);
      b.addEventListener("click", function () {
        call("POST", "/api/station/items/" + i.item_id + "/recount").then(function (r) {
          var lines = [S.recount_result.replace("{counted}", r.counted).replace("{pages_read}", r.pages_read)
            .replace("{same}", r.same).replace("{differ}", r.differ.length).replace("{unclear}", r.unclear.length)
            .replace("{none}", r.no_kept_page_count)];
          r.differ.forEach(function (d) { lines.push("≠ " + d.serial + " " + JSON.stringify(d.counted) + " → " + JSON.stringify(d.read_now)); });
          $("recount-result").textContent = lines.join("\n");
        }).catch(function (e) { $("recount-result").textContent = S.error + ": " + e.message; });
      });
      box.appendChild(b);
    });
  }

  // --- scan upload --------------------------------------------------------------------------
  var TYPES = { pdf: "application/pdf", tif: "image/tiff", tiff: "image/tiff", png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg" };
  $("scan-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var files = Array.prototype.slice.call($("scan-files").files);
    if (!files.length) return;
    var bar = $("scan-progress"), list = $("scan-results");
    bar.hidden = false; bar.max = files.length; bar.value = 0; list.textContent = "";
    var chain = Promise.resolve();
    files.forEach(function (f, n) {
      chain = chain.then(function () {
        $("scan-status").textContent = S.uploading + " " + f.name + " (" + (n + 1) + "/" + files.length + ")";
        var ext = f.name.split(".").pop().toLowerCase();
        return call("POST", "/api/station/scans", f, TYPES[ext] || f.type).then(function (out) {
          out.pages.forEach(function (p, k) {
            var why = p.reasons.map(reason).join("、") || p.outcome || "";
            // a set sheet's page gives one line per election on it
            var where = f.name + " #" + (p.page || k + 1) + (p.election ? " · " + p.election : "");
            list.appendChild(el("li", { "class": "page-" + p.status }, where + " · " + (S.status[p.status] || p.status) + (why ? " · " + why : "")));
          });
        }, function (e) { list.appendChild(el("li", { "class": "page-refused" }, f.name + " · " + S.error + ": " + e.message)); })
          .then(function () { bar.value = n + 1; return refresh(); });
      });
    });
    chain.then(function () { $("scan-status").textContent = S.done + " (" + files.length + ")"; });
  });

  // --- adjudication -------------------------------------------------------------------------
  // choices: the ballot's own ([{key, title}], an evaluation's options then 弃权/无效), else MARKS
  // [{key, label}] in the page's language: 赞成/反对/弃权/无效 from S.marks, an evaluation's
  // options by their own titles (an option may be keyed "for": only the ballot's own titles then)
  function columns(choices) {
    var opts = choices && choices.length ? choices : MARKS.map(function (m) { return { key: m, title: S.marks[m] }; });
    var std = opts.every(function (c) { return MARKS.indexOf(c.key) >= 0; });
    return opts.map(function (c) {
      return { key: c.key, label: (std || c.key === "abstain" || c.key === "void") ? S.marks[c.key] : c.title };
    });
  }

  function markChooser(name, keys, titles, choices) {
    var box = el("div", { "class": "marks" });
    var opts = columns(choices);
    keys.forEach(function (k) {
      var row = el("div", { "class": "mark-row" });
      row.appendChild(el("span", { "class": "cand" }, titles[k] || k));
      opts.forEach(function (c) {
        var lab = el("label");
        var inp = el("input", { type: "radio", name: name + "|" + k, value: c.key });
        if (c.key === "abstain") inp.checked = true;
        lab.appendChild(inp); lab.appendChild(document.createTextNode(" " + c.label));
        row.appendChild(lab);
      });
      box.appendChild(row);
    });
    return box;
  }
  function chosen(form, name, keys) {
    var marks = {};
    keys.forEach(function (k) {
      var c = form.querySelector("input[name='" + name + "|" + k + "']:checked");
      if (c) marks[k] = c.value;
    });
    return marks;
  }

  // A card's state as the server last drew it: a card the teller has touched is kept while this
  // is unchanged, so the 5-s refresh never swaps a teller's marks back to the defaults unseen
  // (a rebuilt card would then send 弃权 for what the teller had marked).
  function cardState(p) {
    return p.status + "|" + p.decisions.map(function (d) { return d.teller_role + ":" + d.teller; }).join(",");
  }

  var queueAsked = 0;
  function loadQueue() {
    var ask = ++queueAsked;
    return call("GET", "/api/station/queue").then(function (q) {
      if (ask !== queueAsked) return;               // a later refresh was sent: its answer is the one to draw
      var list = $("queue-list"), kept = {};
      list.querySelectorAll("form.page-card[data-touched]").forEach(function (f) { kept[f.dataset.page] = f; });
      list.textContent = "";
      if (!q.pages.length) { list.appendChild(el("p", { "class": "note" }, S.empty_queue)); return; }
      q.pages.forEach(function (p) {
        var old = kept[String(p.id)];
        if (old && old.dataset.state === cardState(p)) { list.appendChild(old); return; }
        var card = pageCard(p);
        if (old) carryOver(old, card);
        list.appendChild(card);
      });
    });
  }

  // The page changed under a teller's marks (the other teller decided it): the new card keeps
  // what this teller had marked and typed, and says the page changed, so nothing is reset unseen.
  function carryOver(old, card) {
    var moved = false;
    old.querySelectorAll("input[type=radio]:checked").forEach(function (r) {
      var same = card.querySelector("input[type=radio][name='" + r.name + "'][value='" + r.value + "']");
      if (same && !same.checked) { same.checked = true; moved = true; }
    });
    ["textarea.write-ins", "input.qr"].forEach(function (sel) {
      var a = old.querySelector(sel), b = card.querySelector(sel);
      if (a && b && a.value) { b.value = a.value; moved = true; }
    });
    var status = card.querySelector("p.status");
    if (moved) {
      card.dataset.touched = "1";
      if (status) status.textContent = S.page_changed;
    }
  }

  function png(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    return "data:image/png;base64," + b64;
  }

  function pageCard(p) {
    var card = el("form", { "class": "page-card", "data-page": p.id, "data-state": cardState(p) });
    function touched() { card.dataset.touched = "1"; }
    card.addEventListener("input", touched);
    card.addEventListener("change", touched);
    card.appendChild(el("h3", {}, (p.title ? p.title + " · " : "") + (S.status[p.status] || p.status) + " · " + p.reasons.map(reason).join("、")));
    if (p.decisions.length) {
      card.appendChild(el("p", { "class": "note" }, S.decided_by + p.decisions.map(function (d) { return (S.roles[d.teller_role] || "") + " " + d.teller; }).join("，")));
    }
    // a ballot set's sheet: the band of the page holding this election ("section"), then its boxes
    var section = p.crops.section;
    if (section) card.appendChild(el("img", { "class": "whole-page section", alt: p.title || "", src: png(section) }));
    var crops = el("div", { "class": "crops" });
    var keys = Object.keys(p.crops).filter(function (k) { return k !== "section"; });
    keys.forEach(function (k) {
      var fig = el("figure");
      fig.appendChild(el("img", { src: png(p.crops[k]), alt: k }));
      var parts = k.split("|");
      fig.appendChild(el("figcaption", {}, parts[0] + " · " + (S.marks[parts[1]] || parts[1])));
      crops.appendChild(fig);
    });
    card.appendChild(crops);
    if (!keys.length && !section && p.reasons[0] !== "read by eye") {
      var img = el("img", { "class": "whole-page", alt: "" });
      card.appendChild(img);
      call("GET", "/api/station/pages/" + p.id + "/image").then(function (blob) {
        var fr = new FileReader();
        fr.onload = function () { img.src = fr.result; };
        fr.readAsDataURL(blob);
      }).catch(function () { img.remove(); });
    }
    var qr = null;
    if (!p.has_qr) {
      qr = el("input", { type: "text", size: 40, "class": "qr", placeholder: S.qr_needed, autocomplete: "off" });
      card.appendChild(qr);
    }
    var mine = p.decisions.some(function (d) { return d.teller === me.holder; });
    if (mine || (p.status === "waiting") !== (me.teller_role === "chief")) {
      // nothing for this teller to do: decided already, or it is not (yet) theirs to decide
      card.appendChild(el("p", { "class": "note" }, mine ? S.wait_other : (p.status === "waiting" ? S.status.waiting : S.wait_tellers)));
      return card;
    }
    var keysOf = p.candidates.length ? p.candidates : [];
    var chooser = el("div");
    chooser.appendChild(markChooser(p.id, keysOf, p.titles || {}, p.choices));
    card.appendChild(chooser);
    // a name on an election ballot's 另选 line: the tellers type it as written (赞成 for that person);
    // a ballot read by eye too, whose lines the first teller typed
    var written = null;
    if (p.reasons.indexOf(WRITTEN_IN) >= 0 || (p.write_in_lines && p.reasons.indexOf("read by eye") >= 0)) {
      written = el("textarea", { "class": "write-ins", rows: 2 });
      var wl = el("label", {}, S.write_ins); wl.appendChild(written);
      card.appendChild(wl);
    }
    var go = el("button", { type: "submit", "class": "primary" }, S.decide);
    var rej = el("button", { type: "button", "class": "reject" }, S.reject);
    card.appendChild(go); card.appendChild(rej);
    var status = el("p", { role: "status", "class": "status" });
    card.appendChild(status);
    if (qr) {
      // the QR text names the ballot (and so its candidates): fetch them when it is scanned
      qr.addEventListener("change", function () {
        call("POST", "/api/station/ballot-info", { ballot: qr.value.trim() }).then(function (info) {
          keysOf = info.candidates.map(function (c) { return c.key; });
          var titles = {}; info.candidates.forEach(function (c) { titles[c.key] = c.title; });
          chooser.textContent = ""; chooser.appendChild(markChooser(p.id, keysOf, titles, info.choices));
        }).catch(function (e) { status.textContent = S.error + ": " + e.message; });
      });
    }
    function send(decision) {
      call("POST", "/api/station/pages/" + p.id + "/decision", { decision: decision }).then(function (r) {
        status.textContent = S.saved + " · " + (S.status[r.status] || r.status);
        return refresh();
      }).catch(function (e) { status.textContent = S.error + ": " + e.message; loadBoard(); });
    }
    card.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var d = { marks: chosen(card, p.id, keysOf) };
      if (written) written.value.split("\n").forEach(function (n) { if (n.trim()) d.marks["write_in:" + n.trim()] = "for"; });
      if (qr) d.ballot = qr.value.trim();
      send(d);
    });
    rej.addEventListener("click", function () { send({ reject: true }); });
    return card;
  }

  // --- read by eye (USB QR scanner) ---------------------------------------------------------
  // A ballot set's sheet lists its elections ("sections"): each is entered and sent on its
  // own, one after the other, as its own ballot (its own QR text from ballot-info).
  var eye = null;
  function showEye() {
    var info = eye.sections[eye.at];
    eye.ballot = info.ballot;
    eye.keys = info.candidates.map(function (c) { return c.key; });
    var titles = {}; info.candidates.forEach(function (c) { titles[c.key] = c.title; });
    $("byeye-title").textContent = (eye.sections.length > 1 ? S.sheet_section + " " + (eye.at + 1) + "/" + eye.sections.length + " · " : "") + info.title;
    var m = $("byeye-marks"); m.textContent = ""; m.appendChild(markChooser("eye", eye.keys, titles, info.choices));
    // an election ballot's 另选他人 lines: one field a printed line, typed as written
    var w = $("byeye-write-ins"); w.textContent = "";
    eye.places = info.places;
    for (var n = 1; n <= (info.write_in_lines || 0); n++) {
      var lab = el("label", { "class": "write-in-line" }, S.byeye_write_in.replace("{n}", n) + " ");
      lab.appendChild(el("input", { type: "text", name: "byeye_write_in", maxlength: 100, autocomplete: "off" }));
      w.appendChild(lab);
    }
    showChosen();
    $("byeye-form").hidden = false;
  }
  function eyeWriteIns() {
    return Array.prototype.map.call($("byeye-form").querySelectorAll("input[name='byeye_write_in']"),
      function (i) { return i.value.trim(); }).filter(function (v) { return v; });
  }
  // an election: how many persons the ballot chooses (赞成 + 另选) against its seats; more counts invalid
  function showChosen() {
    var p = $("byeye-chosen");
    if (!eye.places) { p.textContent = ""; p.classList.remove("warn"); return; }
    var marks = chosen($("byeye-form"), "eye", eye.keys);
    var n = Object.keys(marks).filter(function (k) { return marks[k] === "for"; }).length + eyeWriteIns().length;
    var over = n > eye.places;
    p.textContent = S.byeye_chosen.replace("{n}", n).replace("{k}", eye.places) + (over ? " · " + S.over_selected : "");
    p.classList.toggle("warn", over);
  }
  $("byeye-form").addEventListener("input", function () { if (eye) showChosen(); });
  $("byeye-form").addEventListener("change", function () { if (eye) showChosen(); });
  $("byeye-scan").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("byeye-qr").value.trim();
    call("POST", "/api/station/ballot-info", { ballot: text }).then(function (info) {
      eye = { sections: info.sections || [Object.assign({ ballot: text }, info)], at: 0 };
      $("byeye-status").textContent = "";
      showEye();
    }).catch(function (e) { $("byeye-status").textContent = S.error + ": " + e.message; });
  });
  $("byeye-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var sent = { ballot: eye.ballot, marks: chosen($("byeye-form"), "eye", eye.keys) };
    if (eye.places) sent.write_ins = eyeWriteIns();
    call("POST", "/api/station/by-eye", sent).then(function (r) {
      $("byeye-status").textContent = S.queued_for_second + (eye.sections.length > 1 ? " (" + (eye.at + 1) + "/" + eye.sections.length + ")" : "") +
        (r.over_selected ? " · " + S.over_selected : "");
      eye.at += 1;
      if (eye.at < eye.sections.length) { showEye(); return refresh(); }
      $("byeye-form").hidden = true; $("byeye-qr").value = ""; $("byeye-qr").focus();
      return refresh();
    }).catch(function (e) { $("byeye-status").textContent = S.error + ": " + e.message; });
  });

  // --- hand-out desk ------------------------------------------------------------------------
  // Scans gather a stack; one request activates it (station_api.station_hand_out →
  // paper_ballots.hand_out), so nothing keeps the order within the stack.
  var handed = 0, stack = [];
  function showStack() { $("desk-stack").textContent = String(stack.length); }
  $("desk-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("desk-qr").value.trim();
    $("desk-qr").value = "";
    if (text && stack.indexOf(text) < 0) stack.push(text);
    showStack();
  });
  $("desk-clear").addEventListener("click", function () { stack = []; showStack(); $("desk-status").textContent = ""; });
  $("desk-send").addEventListener("click", function () {
    if (!stack.length) return;
    call("POST", "/api/station/hand-out", { ballots: stack }).then(function (r) {
      handed += r.handed_out;
      stack = []; showStack();
      $("desk-status").textContent = S.handed + "：" + handed;
      return loadBoard();
    }).catch(function (e) { $("desk-status").textContent = S.error + ": " + e.message; });
  });

  // --- tally sheet --------------------------------------------------------------------------
  // An election's 另选他人 rows: a person's name (or 代表证号) and their 赞成 votes; rows are added and removed.
  function writeInRows() {
    var box = el("div", { "class": "write-ins" });
    box.appendChild(el("h4", {}, S.sheet_write_ins));
    var t = el("table", { "class": "figures write-ins" }), hr = el("tr");
    hr.appendChild(el("th", {}, S.sheet_write_in_name)); hr.appendChild(el("th", {}, S.marks["for"])); hr.appendChild(el("th"));
    t.appendChild(hr);
    function addRow() {
      var r = el("tr", { "class": "write-in" }), td = el("td");
      td.appendChild(el("input", { type: "text", name: "write_in_name", maxlength: 100 })); r.appendChild(td);
      td = el("td"); td.appendChild(el("input", { type: "number", min: 0, name: "write_in_for", "class": "w5", value: 0 })); r.appendChild(td);
      var rm = el("button", { type: "button", "class": "remove-write-in" }, S.remove_write_in);
      rm.addEventListener("click", function () { t.removeChild(r); });
      td = el("td"); td.appendChild(rm); r.appendChild(td);
      t.appendChild(r);
    }
    box.appendChild(t);
    var add = el("button", { type: "button", "class": "add-write-in" }, S.add_write_in);
    add.addEventListener("click", addRow);
    var p = el("p"); p.appendChild(add); box.appendChild(p);
    return box;
  }

  // Whether a teller has typed into a sheet form (a figure or a name not as drawn).
  function typed(f) {
    return Array.prototype.some.call(f.querySelectorAll("input"), function (x) { return x.value !== x.defaultValue; });
  }

  function renderSheets() {
    var box = $("sheet-items"), kept = {};
    // the 5-s refresh must not wipe a half-typed sheet: a form typed into is kept as it is
    // while its sheet's state is unchanged (a submitted one changes state and is drawn anew)
    box.querySelectorAll("form.sheet").forEach(function (f) { if (typed(f)) kept[f.dataset.item] = f; });
    box.textContent = "";
    none($("sheet-none"), !board.items.some(function (i) { return i.channel === "tally_sheet"; }));
    board.items.filter(function (i) { return i.channel === "tally_sheet"; }).forEach(function (i) {
      var old = kept[String(i.item_id)];
      if (old && old.dataset.sheet === i.sheet) { box.appendChild(old); return; }
      var f = el("form", { "class": "sheet", "data-item": i.item_id, "data-sheet": i.sheet });
      f.appendChild(el("h3", {}, i.title + " · " + S.sheet_state[i.sheet]));
      if (i.sheet === "confirmed" || i.status !== "closed") { box.appendChild(f); return; }
      var top = el("p");
      ["issued", "returned", "invalid"].forEach(function (k, n) {
        var lab = el("label", {}, S.sheet_fields[n] + " ");
        lab.appendChild(el("input", { type: "number", min: 0, name: k, "class": "w5", required: "" }));
        top.appendChild(lab);
      });
      f.appendChild(top);
      // the sheet's columns are the round's own: an evaluation's options, else 赞成/反对; then 弃权/无效
      var cols = columns(i.choices);
      var t = el("table", { "class": "figures" }), hr = el("tr");
      hr.appendChild(el("th"));
      cols.forEach(function (c) { hr.appendChild(el("th", {}, c.label)); });
      t.appendChild(hr);
      i.candidates.forEach(function (k) {
        var r = el("tr"); r.appendChild(el("td", {}, (i.titles || {})[k] || k));
        cols.forEach(function (c) {
          var td = el("td"); td.appendChild(el("input", { type: "number", min: 0, name: k + "|" + c.key, "class": "w5", value: 0 }));
          r.appendChild(td);
        });
        t.appendChild(r);
      });
      f.appendChild(t);
      var written = i.write_ins ? writeInRows() : null;
      if (written) f.appendChild(written);
      f.appendChild(el("button", { type: "submit", "class": "primary" }, S.submit_sheet));
      f.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var num = function (n) { return parseInt(f.querySelector("[name='" + n + "']").value, 10); };
        var sheet = { issued: num("issued"), returned: num("returned"), invalid: num("invalid"), counts: {} };
        i.candidates.forEach(function (k) {
          sheet.counts[k] = {};
          cols.forEach(function (c) { sheet.counts[k][c.key] = num(k + "|" + c.key); });
        });
        if (written) {  // 另选他人: the rows with a name, each with its 赞成 votes
          sheet.write_ins = [];
          written.querySelectorAll("tr.write-in").forEach(function (r) {
            var name = r.querySelector("input[name='write_in_name']").value;
            if (name.trim()) sheet.write_ins.push({ name: name, "for": parseInt(r.querySelector("input[name='write_in_for']").value, 10) });
          });
        }
        call("POST", "/api/station/tally-sheet", { item_id: i.item_id, sheet: sheet }).then(function (r) {
          $("sheet-status").textContent = r.state === "entered" ? S.confirm_sheet : S.sheet_state.confirmed;
          return loadBoard();
        }).catch(function (e) { $("sheet-status").textContent = S.error + ": " + e.message; });
      });
      box.appendChild(f);
    });
  }

  // --- count report -------------------------------------------------------------------------
  $("report-button").addEventListener("click", function () {
    call("POST", "/api/station/count-report").then(function (blob) {
      var fr = new FileReader();
      fr.onload = function () { var a = $("report-link"); a.href = fr.result; a.hidden = false; };
      fr.readAsDataURL(blob);
      $("report-status").textContent = S.done;
    }).catch(function (e) { $("report-status").textContent = S.error + ": " + e.message; });
  });

  setInterval(function () { if (me && !document.hidden && !document.activeElement.closest("form")) refresh(); }, 5000);
  start();
})();
