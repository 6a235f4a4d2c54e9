/* Seat terminal page (席位终端): a thin client of the terminal API (openapi.yaml).
 *
 * Every call carries the tablet's credential: Authorization: Bearer <credential>. The
 * secretariat opens /seat#credential=… once; the credential moves to localStorage and the
 * fragment is removed from the address bar (history.replaceState).
 *
 * What is kept where
 * - localStorage: the credential; the ballot of the open vote (round_ref, serial, prefix,
 *   signature) from the moment it is unblinded until the receipt arrives, since the server
 *   signs only once per member per round and a reload must not lose it; before that, from the
 *   blind-sign request on, what it sent (serial, prepared message, blinded message, blinding
 *   inverse), so that a request whose answer was lost (a reload, a node that died, a dropped
 *   connection) is sent again unchanged and the server answers the same signature (it signs a
 *   member's one blinded message again, never a second one); the pending cast
 *   (its exact body with its retry id) while it is being sent, so a reload resends the very
 *   same submission; the receipt code of this tablet's cast for the open vote, so a reload
 *   shows 已投票; the last vote seen (its title), so a reload after the close shows 表决已结束.
 *   Blinding, ballot, retry id and marks are removed as soon as the receipt (or a final answer) arrives;
 *   the receipt is removed as soon as the vote is no longer open.
 * - memory only: the marks while the deputy fills them in.
 *
 * Blind issuance (static/blind_rsa.js, RFC 9474; the server never sees the serial)
 * When a terminal vote is open and this tablet has no ballot for it, the tablet
 *   1. takes the round_key_announced event of the audit chain from the state's vote
 *      (vote.round_key, as GET /api/terminal/round-key also answers it) and checks that it
 *      names the round_ref of the state endpoint's vote, that SHA-384 of its
 *      SubjectPublicKeyInfo DER equals the event's fingerprint AND the state's key_fingerprint;
 *      otherwise it refuses the key, shows an error and requests nothing;
 *   2. makes a random 16-byte serial (crypto.getRandomValues), prepares and blinds
 *      ballot_message(round_ref, serial) and sends only the blinded value
 *      (POST /api/terminal/blind-sign); the server signs once per member per round;
 *   3. unblinds and verifies the signature (finalize throws if it does not verify).
 * It casts {round_ref, serial, prefix, signature, marks, retry_id} WITHOUT its credential for
 * a secret vote (the server keeps nothing of the sender); a named vote's cast carries it.
 *
 * A ballot set (选举票组: 主任, 副主任, 委员 on one ballot) is one ballot screen: the state's
 * vote.ballot_set lists the set's open elections (a re-vote opens only the undecided), each
 * with its own round and key. The tablet checks each round's announced key
 * (each part's vote.round_key), blinds a fresh serial for each, asks for all the signatures in one
 * request (POST /api/terminal/blind-sign-set: all or none), checks 赞成 + 另选 against each
 * election's seats, and sends the casts at once (POST /api/terminal/cast-set), each with its
 * own serial, retry id and receipt secret: nothing ties one election's ballot to another's.
 *
 * Marks and over-voting (RULES.md §3, §4; intake.py)
 * - A terminal sends for/against/abstain for every candidate; a line left blank is sent as
 *   abstain, which is what the server would count it as anyway (RULES §3), so what the deputy
 *   confirms is exactly what is sent. (void exists only for paper.)
 * - A ballot with more 赞成 than places k is invalid as a whole (RULES §4, 选举法 art. 44).
 *   The page PREVENTS it: a (k+1)-th 赞成 tap is refused with a message saying why and how
 *   to change a choice, and the submit is refused again if it ever were over. On a touch
 *   screen one stray tap must not void a deputy's whole ballot; the rule exists to settle
 *   spoiled paper ballots, it is not a choice the law asks a device to offer. A deputy who
 *   wants to express no preference can leave lines blank or tap 弃权 (a blank ballot is valid,
 *   RULES §4) or not vote at all (counted 未按). The server still accepts and counts as invalid
 *   an over-voted ballot from any other client, so the rule itself is enforced at tally.
 *
 * Polling: GET /api/terminal/state?wait=<the ETag of the state it shows> every 3 s plus 0–1.5 s
 * of random jitter (thousands of tablets poll), backing off up to 30 s while the network
 * fails; no polling while a ballot, the confirmation or a submission is on screen, except a
 * look every 10 s from the ballot screen at whether the vote is still open (startWatch).
 * Under `serve` the server holds a `wait` request (a long-poll, no thread held) until the state
 * changes (at once when a vote opens; when it closes, 0.4 s after the screens and then at a
 * random moment of 3 s, or at once if the next vote opens meanwhile) or 12 s pass (30 s while a vote is open; 304: unchanged); the next one is
 * sent at once when the last was held longer than the poll interval. A server that does not
 * hold it (plain WSGI) answers at once and the page simply polls on the schedule above.
 */
(function () {
  "use strict";

  var S = JSON.parse(document.getElementById("seat-strings").textContent);
  var KEY_CRED = "ballotSeat.credential";
  var KEY_RECEIPT = "ballotSeat.receipt";
  var KEY_LAST = "ballotSeat.lastVote";
  var KEY_BALLOT = "ballotSeat.ballot";     // {key, ballot} until the receipt
  var KEY_PENDING = "ballotSeat.pending";   // {key, title, body, secret} while a cast is unanswered
  var KEY_BLINDING = "ballotSeat.blinding"; // {key, parts} from the blind-sign request until unblinded
  var POLL_MS = 3000, POLL_JITTER_MS = 1500, MAX_BACKOFF_MS = 30000;
  var STATE_TIMEOUT_MS = 15000, CAST_TIMEOUT_MS = 20000, WATCH_MS = 10000;
  var LONG_POLL_TIMEOUT_MS = 40000;  // the server holds a long-poll up to 12 s (30 s during a vote)
  // Screens during which the page does not poll (a ballot is on screen or being sent).
  var QUIET = { ballot: 1, confirm: 1, sending: 1, neterror: 1, setup: 1, loading: 0 };

  var st = {
    credential: null,
    screen: null,
    timer: null,
    inflight: false,
    failures: 0,
    noBallot: {},      // vote keys for which this tablet got no ballot (issued only at opening)
    stickyKey: null,   // vote key whose closed/already-voted answer came from a cast
    ballot: null,      // {key, vote, text} while the ballot is on screen
    marks: {},         // candidate key -> mark, memory only
    pending: null,     // {key, title, body}: the exact JSON text being submitted
    sending: false,
    checkingIn: false,
    gen: 0,            // bumped by a check-in: a state poll begun before it is out of date
    clockSkew: 0,      // server time minus local time, from the Date header
    tickTimer: null,
    voteOpen: false,   // the last state had a vote open: no reset offered
    watchTimer: null,  // while a ballot is on screen: is the vote still open?
    lastState: null,   // the state last shown, and its ETag (what a long-poll waits on)
    etag: null
  };

  // --- small helpers --------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function fmt(s, vars) {
    return s.replace(/\{(\w+)\}/g, function (m, k) { return vars[k] !== undefined ? String(vars[k]) : m; });
  }

  function store(key, value) {
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, typeof value === "string" ? value : JSON.stringify(value));
    } catch (e) { /* private mode or full: the page still works, reload just forgets */ }
  }

  function load(key, json) {
    try {
      var v = localStorage.getItem(key);
      return json ? (v ? JSON.parse(v) : null) : v;
    } catch (e) { return null; }
  }

  function text(el, s) { el.textContent = s == null ? "" : s; }

  // A ballot set's key names every election open in it (one election: sitting:item:round).
  function voteKey(sessionId, vote) {
    return sessionId + ":" + partsOf(vote).map(function (v) { return v.item_id + ":" + v.round; }).join("+");
  }

  function partsOf(vote) { return vote.ballot_set && vote.ballot_set.length ? vote.ballot_set : [vote]; }
  function isSet(vote) { return partsOf(vote).length > 1; }
  function setTitle(vote) { return partsOf(vote).map(function (v) { return v.title; }).join(" · "); }

  function setStatus(msg) { text($("seat-status"), msg || ""); }

  // --- the API ----------------------------------------------------------------------------

  function api(method, path, body, timeoutMs, anonymous) {
    var ctl = window.AbortController ? new AbortController() : null;
    var timer = ctl ? setTimeout(function () { ctl.abort(); }, timeoutMs || STATE_TIMEOUT_MS) : null;
    var headers = { "Accept": "application/json" };
    if (!anonymous) headers["Authorization"] = "Bearer " + st.credential;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method, headers: headers, body: body, cache: "no-store", credentials: "omit",
      signal: ctl ? ctl.signal : undefined
    }).then(function (r) {
      var date = Date.parse(r.headers.get("Date") || "");
      if (!isNaN(date)) st.clockSkew = date - Date.now();
      var etag = (r.headers.get("ETag") || "").replace(/"/g, "");
      return r.json().catch(function () { return null; }).then(function (data) {
        return { status: r.status, data: data, etag: etag };
      });
    }).finally(function () { if (timer) clearTimeout(timer); });
  }

  // The error in the page's language: the Chinese wording when the page is Chinese.
  var ZH = (document.documentElement.lang || "zh").indexOf("zh") === 0;
  function firstError(data) {
    var e = data && data.errors && data.errors[0];
    if (!e) return { message: "", errorType: "", reason: null };
    return { message: (ZH && e.message_zh) || e.message, errorType: e.errorType, reason: e.reason };
  }

  // --- screens ----------------------------------------------------------------------------

  function show(name) {
    var prev = st.screen;
    st.screen = name;
    var screens = document.querySelectorAll(".screen");
    for (var i = 0; i < screens.length; i++) {
      screens[i].hidden = screens[i].getAttribute("data-screen") !== name;
    }
    document.body.setAttribute("data-screen", name);
    // Reset needs the secretariat's code, and is offered only while no vote is open.
    $("reset-open").hidden = !st.credential || !!QUIET[name] || st.voteOpen;
    if (prev === "waiting" && name !== "waiting") $("checkin-done").hidden = true;
    if (prev !== name) window.scrollTo(0, 0);
    if (QUIET[name]) stopPolling(); else if (st.credential) ensurePolling();
    if (name === "ballot") startWatch(); else stopWatch();
  }

  // While a ballot is on screen the page does not poll (nothing may redraw under the
  // deputy's finger), but every WATCH_MS it asks whether the vote is still open: a ballot
  // left on screen after the close turns into 表决已结束 by itself, and the tablet keeps being
  // seen as online for the next vote (tablet_setup.py on the server). On the confirmation
  // screen the deputy is about to send: the server's answer (late) says it.
  function startWatch() {
    if (st.watchTimer) return;
    st.watchTimer = setInterval(function () {
      if (!st.ballot || st.sending) return;
      var key = st.ballot.key, title = setTitle(st.ballot.vote);
      api("GET", "/api/terminal/state").then(function (r) {
        if (r.status !== 200 || !r.data || !st.ballot || st.ballot.key !== key || st.sending) return;
        var v = r.data.vote, ses = r.data.session || {};
        if (v && voteKey(ses.id, v) === key) return;  // still open
        wipeBallot();
        st.stickyKey = key;
        showClosed(title, false);
      }).catch(function () { /* the next watch or the submission will tell */ });
    }, WATCH_MS);
  }

  function stopWatch() {
    if (st.watchTimer) clearInterval(st.watchTimer);
    st.watchTimer = null;
  }

  function renderHeader(state) {
    var term = state.terminal || {}, ses = state.session || {};
    text($("seat-name"), term.name + (term.seat && term.name.indexOf(term.seat) < 0 ? " · " + term.seat : ""));
    text($("session-name"), [ses.body, ses.name, ses.meeting].filter(Boolean).join(" · "));
    var m = $("member-name");
    if (state.member) { text(m, fmt(S.member, { name: state.member.name })); m.hidden = false; }
    else { m.hidden = true; }
  }

  function renderAttendance(att) {
    var boxes = document.querySelectorAll(".seat-att");
    for (var i = 0; i < boxes.length; i++) {
      var b = boxes[i];
      if (!att) { b.hidden = true; continue; }
      text(b.querySelector(".att-members"), att.members);
      text(b.querySelector(".att-present"), att.present);
      var q = b.querySelector(".att-quorum");
      text(q, att.quorum_met ? S.quorum_met : S.quorum_not_met);
      q.className = "att-quorum " + (att.quorum_met ? "ok" : "bad");
      b.hidden = false;
    }
  }

  function showSetup(error) {
    stopPolling();
    var e = $("setup-error");
    text(e, error || "");
    e.hidden = !error;
    show("setup");
    $("setup-credential").value = "";
    $("setup-credential").focus();
  }

  function showCheckin(note) {
    var n = $("checkin-note");
    text(n, note || "");
    n.hidden = !note;
    var first = st.screen !== "checkin";
    show("checkin");
    if (first) {
      $("checkin-error").hidden = true;
      $("checkin-member").focus();
    }
  }

  // reason: undefined (no vote open), "late" (checked in after the vote opened: no ballot),
  // "issued" (this seat's ballot was issued already), "paper" (the open vote is on paper) or
  // "asking" (a vote is open: the next state says which). The "no vote is open" lines are
  // hidden while a vote is open, so the screen never says both.
  function showWaiting(reason) {
    $("noballot-note").hidden = reason !== "late" && reason !== true;
    $("issued-note").hidden = reason !== "issued";
    $("paper-note").hidden = reason !== "paper";
    $("waiting-text").hidden = !!reason;
    $("waiting-hint").hidden = !!reason;
    show("waiting");
  }

  // 12 characters read more easily (and aloud) in groups of four: 32A5 A16B 4453.
  function grouped(code) { return (code || "").replace(/(.{4})(?=.)/g, "$1 "); }

  // A code, or a ballot set's codes ([{title, receipt}]) one line per election.
  function receiptText(el, code) {
    if (!Array.isArray(code)) {
      text(el, grouped(code));
      el.setAttribute("data-code", code || "");
      return;
    }
    el.textContent = "";
    code.forEach(function (c) {
      var line = document.createElement("span");
      line.className = "receipt-line";
      line.setAttribute("data-code", c.receipt);
      text(line, c.title + "　" + grouped(c.receipt));
      el.appendChild(line);
    });
    el.setAttribute("data-code", code.map(function (c) { return c.receipt; }).join(" "));
  }

  function showReceipt(title, code) {
    text($("receipt-item"), title);
    receiptText($("receipt-code"), code);
    show("receipt");
  }

  function showVoted(title, code) {
    text($("voted-item"), title);
    receiptText($("voted-receipt"), code);
    $("voted-receipt-line").hidden = !code;
    $("voted-server").hidden = !!code;
    show("voted");
  }

  function showClosed(title, late) {
    text($("closed-item"), title || "");
    $("closed-late").hidden = !late;
    show("closed");
  }

  function badCredential() {
    store(KEY_CRED, null);
    st.credential = null;
    st.lastState = st.etag = null;
    wipeBallot();
    showSetup(S.bad_credential);
  }

  // --- polling ----------------------------------------------------------------------------

  function nextDelay() {
    var base = st.failures ? Math.min(MAX_BACKOFF_MS, POLL_MS * Math.pow(2, st.failures)) : POLL_MS;
    return base + Math.random() * (st.failures ? base / 2 : POLL_JITTER_MS);
  }

  function stopPolling() {
    if (st.timer) clearTimeout(st.timer);
    st.timer = null;
  }

  function ensurePolling(since) {
    // A long-poll the server held longer than the interval: ask again at once.
    var wait = nextDelay() - (since ? Date.now() - since : 0);
    if (!st.timer && !st.inflight) st.timer = setTimeout(poll, Math.max(0, wait));
  }

  function pollNow() {
    stopPolling();
    poll();
  }

  function poll() {
    st.timer = null;
    if (!st.credential || QUIET[st.screen] || st.inflight) return;
    st.inflight = true;
    var gen = st.gen, since = Date.now(), held = st.lastState && st.etag ? st.etag : null;
    var path = "/api/terminal/state" + (held ? "?wait=" + encodeURIComponent(held) : "");
    api("GET", path, undefined, held ? LONG_POLL_TIMEOUT_MS : STATE_TIMEOUT_MS).then(function (r) {
      if (r.status === 401 || r.status === 403) { st.inflight = false; badCredential(); return null; }
      var unchanged = r.status === 304 && held;
      if (!unchanged && (r.status !== 200 || !r.data)) throw new Error("HTTP " + r.status);
      st.failures = 0;
      setStatus("");
      if (gen !== st.gen || QUIET[st.screen]) return null; // a check-in or a ballot overtook this answer
      if (!unchanged) { st.lastState = r.data; st.etag = r.etag; }
      return route(st.lastState);
    }).catch(function () {
      st.failures = Math.min(st.failures + 1, 8);
      setStatus(S.offline);
    }).then(function () {
      st.inflight = false;
      if (st.credential && !QUIET[st.screen]) ensurePolling(since);
    });
  }

  // Decide the screen from the terminal's state.
  function route(state) {
    st.voteOpen = !!state.vote;
    $("reset-open").hidden = !st.credential || !!QUIET[st.screen] || st.voteOpen;
    renderHeader(state);
    renderAttendance(state.attendance);
    var vote = state.vote, sessionId = state.session && state.session.id;
    var rec = load(KEY_RECEIPT, true);
    var last = load(KEY_LAST, true);
    if (last && last.session !== sessionId) { store(KEY_LAST, null); last = null; }

    if (!vote) {
      if (rec) store(KEY_RECEIPT, null);
      st.noBallot = {};
      if (state.session && state.session.closed) {  // 闭会: no next vote to wait for
        text($("ended-session"), [state.session.body, state.session.name].filter(Boolean).join(" · "));
        show("ended");
        return null;
      }
      if (!state.member) { showCheckin(); return null; }
      if (last) {
        if (st.screen !== "closed") showClosed(last.title, false);
        return null;
      }
      showWaiting(false);
      return null;
    }

    var key = voteKey(sessionId, vote);
    if (!last || last.key !== key) store(KEY_LAST, { key: key, session: sessionId, title: setTitle(vote) });
    if (rec && rec.key !== key) { store(KEY_RECEIPT, null); rec = null; }
    if (rec) {
      if (st.screen !== "receipt" && st.screen !== "voted") showVoted(setTitle(vote), rec.receipt);
      return null;
    }
    if (st.stickyKey === key && (st.screen === "voted" || st.screen === "closed" || st.screen === "refused")) {
      return null; // the server already told us how this vote ended for this tablet
    }
    if (!vote.round_ref) {  // on paper (or a tally sheet): no tablet ballot, nothing to ask for
      if (state.member) showWaiting("paper");
      else showCheckin();
      return null;
    }
    if (st.noBallot[key]) {
      if (state.member) showWaiting(st.noBallot[key] === "issued" ? "issued" : "late");
      else showCheckin($("noballot-note").textContent);
      return null;
    }
    var pend = load(KEY_PENDING, true);
    if (pend && pend.key === key) {  // a cast sent before a reload: resend the very same body
      st.pending = pend;
      send();
      return null;
    }
    var kept = load(KEY_BALLOT, true);
    if (kept && kept.key === key) {
      showBallot(key, vote, kept.ballot);
      return null;
    }
    return obtainBallot(vote, key).then(function (ballot) {
      store(KEY_BALLOT, { key: key, ballot: ballot });
      store(KEY_BLINDING, null);
      showBallot(key, vote, ballot);
    }, function (err) {
      // Final answers: no vote for this tablet, or this member's ballot went to another request.
      // Kept otherwise (absent, the network, a 5xx): the same request is the one to send again.
      if (err && (err.status === 404 || (err.status === 409 && err.where === "ballot"))) store(KEY_BLINDING, null);
      if (err && err.status === 404) {
        st.noBallot[key] = true;
        if (state.member) showWaiting("late");
        else showCheckin($("noballot-note").textContent);
      } else if (err && (err.status === 401 || err.status === 403)) {
        badCredential();
      } else if (err && err.status === 409) {
        st.noBallot[key] = "issued";  // this member's ballot was issued already (another tablet, storage lost)
        if (state.member) showWaiting("issued");
      } else if (err && err.unannounced) {
        st.stickyKey = key;
        text($("refused-detail"), S.bad_round_key || "round key not announced");
        show("refused");
      } else {
        throw err;
      }
    });
  }

  function fail(status, data) {
    var e = new Error("HTTP " + status), first = data && data.errors && data.errors[0];
    e.status = status;
    e.where = first ? first.where : null;
    return e;
  }

  function hex(bytes) { return BlindRSA.bytesToHex(bytes); }

  // The announced round key, checked (file header), then one blind signature.
  function obtainBallot(vote, key) {
    if (isSet(vote)) return obtainSetBallots(partsOf(vote), key);
    return Promise.resolve().then(function () {
      var pks = [checkedKey(vote.round_key, vote)], b = blindings(key, [vote], pks)[0];
      return api("POST", "/api/terminal/blind-sign", JSON.stringify({
        round_ref: vote.round_ref, blinded_msg: b.blinded
      })).then(function (s) {
        if (s.status !== 200 || !s.data || !s.data.blind_sig) throw fail(s.status, s.data);
        return unblinded(pks[0], b, s.data.blind_sig);
      });
    });
  }

  // A ballot set: each round's announced key checked as above, a fresh serial blinded for
  // each, the signatures in one request (all or none), each unblinded and verified.
  function obtainSetBallots(parts, key) {
    return Promise.resolve().then(function () {
      var pks = parts.map(function (vote) { return checkedKey(vote.round_key, vote); });
      var bs = blindings(key, parts, pks);
      return api("POST", "/api/terminal/blind-sign-set", JSON.stringify({ ballots: bs.map(function (b) {
        return { round_ref: b.round_ref, blinded_msg: b.blinded };
      }) })).then(function (s) {
        if (s.status !== 200 || !s.data || !s.data.blind_sigs || s.data.blind_sigs.length !== parts.length) throw fail(s.status, s.data);
        return bs.map(function (b, i) { return unblinded(pks[i], b, s.data.blind_sigs[i]); });
      });
    });
  }

  // What this tablet blinds for the vote `key`: kept from an earlier request whose answer never
  // came (file header), else a fresh random serial per round, blinded, kept before it is sent.
  function blindings(key, votes, pks) {
    var B = window.BlindRSA, kept = load(KEY_BLINDING, true);
    if (kept && kept.key === key && kept.parts && kept.parts.length === votes.length &&
        votes.every(function (vote, i) { return kept.parts[i].round_ref === vote.round_ref; })) {
      return kept.parts;
    }
    var parts = votes.map(function (vote, i) {
      var serial = B.randomBytes(16), msg = B.prepare(B.ballotMessage(vote.round_ref, serial));
      var bl = B.blind(pks[i], msg);
      return { round_ref: vote.round_ref, serial: hex(serial), msg: B.bytesToBase64url(msg),
               blinded: B.bytesToBase64url(bl.blindedMsg), inv: B.bytesToBase64url(bl.inv) };
    });
    store(KEY_BLINDING, { key: key, parts: parts });
    return parts;
  }

  // The ballot from a blind signature: unblinded and verified (finalize throws otherwise; then
  // the kept request is dropped: sending it again would only bring the same bad answer).
  function unblinded(pk, b, blindSig) {
    var B = window.BlindRSA, msg = B.base64urlToBytes(b.msg), sig;
    try {
      sig = B.finalize(pk, msg, B.base64urlToBytes(blindSig), B.base64urlToBytes(b.inv));
    } catch (e) {
      store(KEY_BLINDING, null);
      throw e;
    }
    return { round_ref: b.round_ref, serial: b.serial, prefix: B.bytesToBase64url(msg.slice(0, 32)),
             signature: B.bytesToBase64url(sig) };
  }

  // The announced key of `vote`'s round (its round_key: the announcement event), or an
  // `unannounced` error (file header, step 1).
  function checkedKey(ann, vote) {
    var B = window.BlindRSA, a = (ann && ann.data) || {}, der;
    try { der = B.base64urlToBytes(a.public_key_der); } catch (e) { der = null; }
    var fp = der ? hex(window.nobleHashes.sha384(der)) : null;
    if (!der || a.round_ref !== vote.round_ref || a.fingerprint !== fp ||
        fp !== vote.key_fingerprint || ann.kind !== "round_key_announced") {
      var err = new Error("round key not announced"); err.unannounced = true; throw err;
    }
    return B.importPublicKey(der);
  }

  // --- check-in ---------------------------------------------------------------------------

  function checkin(input) {
    var value = input.value.trim();
    if (!value || st.checkingIn) return;
    var err = $("checkin-error");
    err.hidden = true;
    st.checkingIn = true;
    st.gen++;
    api("POST", "/api/terminal/checkin", JSON.stringify({ member: value })).then(function (r) {
      st.checkingIn = false;
      st.gen++;
      if (r.status === 200 && r.data) {
        input.value = "";
        $("checkin-card").value = "";
        renderAttendance(r.data.attendance);
        var done = $("checkin-done");
        text(done, fmt(S.checked_in, { name: r.data.member.name }));
        done.hidden = false;
        var m = $("member-name");
        text(m, fmt(S.member, { name: r.data.member.name }));
        m.hidden = false;
        showWaiting(r.data.vote_open ? "asking" : false);
        pollNow(); // a vote may be open already
        return;
      }
      // 401: the credential is unknown or revoked. A 403 here refuses this deputy at this seat
      // (another seat's deputy): say why and keep the credential.
      if (r.status === 401) { badCredential(); return; }
      var e = firstError(r.data);
      text(err, r.status === 404 ? S.checkin_unknown : fmt(S.checkin_failed, { msg: e.message || r.status }));
      err.hidden = false;
      input.select();
      ensurePolling();
    }).catch(function () {
      st.checkingIn = false;
      text(err, S.net_error);
      err.hidden = false;
      ensurePolling();
    });
  }

  // --- the ballot ---------------------------------------------------------------------------

  // An evaluation (满意度测评) marks one of its options, best first, instead of 赞成/反对/弃权;
  // its buttons are coloured by rank: the best green, the worst red, those between amber.
  function markKeys(vote) {
    return vote.options ? vote.options.map(function (o) { return o.key; }) : ["for", "against", "abstain"];
  }

  function markStyle(vote, mark) {
    if (!vote.options) return mark;
    var keys = markKeys(vote), i = keys.indexOf(mark);
    return i === 0 ? "for" : (i === keys.length - 1 ? "against" : "mid");
  }

  function markLabel(vote, mark) {
    if (vote.options) {
      for (var i = 0; i < vote.options.length; i++) if (vote.options[i].key === mark) return vote.options[i].title;
    }
    if (mark === "against" && vote.kind === "livelihood_projects") return S.mark_against_project;
    return S["mark_" + mark];
  }

  function candTitle(vote, c) {
    if (vote.kind === "resolution" && c.key === "motion") return S.motion;
    return c.office ? fmt(S.nominee, { name: c.title, office: c.office }) : c.title;  // 拟任职务
  }

  // The ballot on screen is one part per election (a ballot set has several, one election
  // one); `active` is the part the deputy last touched (its write-in box, its messages).
  function cur() { return st.ballot.parts[st.ballot.active]; }

  function countFor(p) {
    p = p || cur();
    var n = p.writeIns.length;  // 另选他人 count against the seats like 赞成
    for (var k in p.marks) if (p.marks[k] === "for") n++;
    return n;
  }

  function showBallot(key, vote, ballot) {
    var set = isSet(vote), votes = partsOf(vote), first = votes[0];
    parkWriteIn();
    st.ballot = { key: key, vote: vote, active: 0, set: set, parts: votes.map(function (v, i) {
      return { vote: v, ballot: set ? ballot[i] : ballot, marks: {}, writeIns: [], i: i };
    }) };
    text($("ballot-title"), set ? setTitle(vote) : vote.title);
    text($("ballot-kind"), set ? fmt(S.set_tag, { n: votes.length }) : S["kind_" + vote.kind] || vote.kind);
    var rnd = $("ballot-round");
    text(rnd, fmt(S["round_" + first.stage] || S.round, { n: first.round }));  // elections name the round
    rnd.hidden = set || !(first.round > 1);  // a set names each election's round in its heading
    text($("ballot-mode"), first.secret ? S.secret : S.named);
    $("ballot-mode").className = "tag " + (first.secret ? "secret" : "named");
    text($("ballot-notice"), first.secret ? S.secret_notice : S.named_notice);
    if (S["hint_" + first.kind]) text($("ballot-hint"), set ? S.hint_set : S["hint_" + first.kind]);  // worded per kind
    $("ballot-error").hidden = true;

    var list = $("ballot-list");
    list.textContent = "";
    list.classList.toggle("set", set);
    votes.forEach(function (v, i) {
      if (set) list.appendChild(setHead(v, i));
      v.candidates.forEach(function (c, n) {
        var row = candidateRow(v, c, i);
        row.querySelector("strong").setAttribute("data-n", n + 1);  // each election numbers its own
        list.appendChild(row);
      });
      if (set && v.write_in && v.write_in.allowed) {  // its 另选他人, under its own candidates
        var slot = document.createElement("li"), chosen = document.createElement("ul"), open = document.createElement("button");
        slot.className = "write-in-slot";
        slot.setAttribute("data-part", i);
        chosen.className = "write-in-chosen";
        chosen.setAttribute("data-part", i);
        open.type = "button";
        open.className = "seat-btn write-in-open";
        open.setAttribute("data-part", i);
        text(open, S.write_in_open);
        slot.appendChild(chosen);
        slot.appendChild(open);
        list.appendChild(slot);
      }
    });
    $("write-in-chosen").hidden = set;
    $("ballot-count").hidden = set;
    if (set) $("write-in").hidden = true; else showWriteIn(vote);
    renderWriteIns();
    renderMarks();
    show("ballot");
    startClock();
  }

  // A set's election heading: its title, its round (re-vote / 另行选举), its seats count.
  function setHead(v, i) {
    var head = document.createElement("li"), h = document.createElement("h2"), cnt = document.createElement("div");
    head.className = "set-head";
    head.setAttribute("data-part", i);
    text(h, v.title);
    head.appendChild(h);
    if (v.round > 1) {
      var tag = document.createElement("span");
      tag.className = "tag runoff";
      text(tag, fmt(S["round_" + v.stage] || S.round, { n: v.round }));
      head.appendChild(tag);
    }
    cnt.className = "ballot-count set-count";
    cnt.setAttribute("data-part", i);
    head.appendChild(cnt);
    return head;
  }

  function candidateRow(vote, c, i) {
    var li = document.createElement("li");
    li.className = "cand";
    li.setAttribute("data-key", c.key);
    li.setAttribute("data-part", i);
    var info = document.createElement("div");
    info.className = "cand-text";
    var strong = document.createElement("strong");
    text(strong, candTitle(vote, c));
    info.appendChild(strong);
    if (c.description) {
      var d = document.createElement("span");
      d.className = "cand-desc";
      text(d, c.description);
      info.appendChild(d);
    }
    li.appendChild(info);
    var group = document.createElement("div");
    group.className = "marks" + (vote.options ? " marks-" + vote.options.length : "");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", candTitle(vote, c));
    markKeys(vote).forEach(function (mark) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "mark mark-" + markStyle(vote, mark);
      b.setAttribute("data-key", c.key);
      b.setAttribute("data-part", i);
      b.setAttribute("data-mark", mark);
      b.setAttribute("aria-pressed", "false");
      text(b, markLabel(vote, mark));
      group.appendChild(b);
    });
    li.appendChild(group);
    return li;
  }

  function inPart(sel, i) { return $("ballot-list").querySelectorAll(sel + '[data-part="' + i + '"]'); }

  function renderMarks() {
    st.ballot.parts.forEach(function (p) {
      var vote = p.vote, places = vote.places;
      var n = countFor(p), full = places != null && n >= places;
      var buttons = inPart("button.mark", p.i);
      for (var i = 0; i < buttons.length; i++) {
        var b = buttons[i], k = b.getAttribute("data-key"), m = b.getAttribute("data-mark");
        var on = p.marks[k] === m;
        b.setAttribute("aria-pressed", on ? "true" : "false");
        b.classList.toggle("at-limit", m === "for" && full && !on);
      }
      var items = inPart("li.cand", p.i);
      for (var j = 0; j < items.length; j++) items[j].classList.toggle("marked", !!p.marks[items[j].getAttribute("data-key")]);
      var box = st.ballot.set ? inPart(".set-count", p.i)[0] : $("ballot-count");
      if (places != null) {
        text(box, fmt(vote.kind === "election" ? S.count_election : full ? S.count_full : S.count, { n: n, k: places }));
        box.classList.toggle("full", full);
        box.hidden = false;
      } else {
        box.hidden = true;
      }
    });
  }

  // --- 另选他人 (elections) -----------------------------------------------------------------

  // The reason an over-selection is refused; in a set, said with the election's title.
  function overLimitText(k, p) {
    p = p || cur();
    var msg = fmt(p.vote.kind === "election" ? S.over_limit_election : S.over_limit, { k: k });
    return st.ballot.set ? p.vote.title + "：" + msg : msg;
  }

  function showWriteIn(vote) {
    var w = vote.write_in, box = $("write-in");
    $("write-in-q").value = "";
    $("write-in-results").textContent = "";
    box.hidden = !(w && w.allowed);
    if (box.hidden) return;
    text($("write-in-note"), w.roster_only ? S.write_in_roster_only : S.write_in_any);
    $("write-in-typed").hidden = !!w.roster_only;
  }

  // A set's search box goes under the election whose 另选他人 was tapped (one box, moved).
  function openWriteIn(i) {
    st.ballot.active = i;
    var slot = inPart("li.write-in-slot", i)[0];
    slot.appendChild($("write-in"));
    showWriteIn(cur().vote);
    $("write-in-q").focus();
  }

  // The search box back in its place outside the list (before the list is emptied).
  function parkWriteIn() {
    var box = $("write-in"), list = $("ballot-list");
    if (box.parentNode !== list.parentNode) list.parentNode.insertBefore(box, list.nextSibling);
  }

  function renderWriteIns() {
    st.ballot.parts.forEach(function (p) {
      var ul = st.ballot.set ? inPart("ul.write-in-chosen", p.i)[0] : $("write-in-chosen");
      if (!ul) return;
      ul.textContent = "";
      p.writeIns.forEach(function (w, i) {
        var li = document.createElement("li");
        li.setAttribute("data-value", w.value);
        var span = document.createElement("span");
        text(span, fmt(S.write_in_label, { name: w.label }));
        var b = document.createElement("button");
        b.type = "button";
        b.className = "seat-btn small write-in-remove";
        text(b, S.write_in_remove);
        b.addEventListener("click", function () { p.writeIns.splice(i, 1); renderWriteIns(); renderMarks(); });
        li.appendChild(span);
        li.appendChild(b);
        ul.appendChild(li);
      });
    });
  }

  function addWriteIn(value, label) {
    var p = cur(), places = p.vote.places, err = $("ballot-error");
    value = (value || "").trim();
    if (!value || p.writeIns.some(function (w) { return w.value === value; })) return;
    if (places != null && countFor(p) >= places) {  // refused here, with the reason: never sent
      text(err, overLimitText(places, p));
      err.hidden = false;
      return;
    }
    err.hidden = true;
    p.writeIns.push({ value: value, label: label || value });
    $("write-in-q").value = "";
    $("write-in-results").textContent = "";
    renderWriteIns();
    renderMarks();
  }

  function searchRoster() {
    var q = $("write-in-q").value.trim(), vote = st.ballot && cur().vote, w = vote && vote.write_in;
    var out = $("write-in-results");
    if (!q || !w) { out.textContent = ""; return; }
    api("GET", "/api/terminal/roster-search?q=" + encodeURIComponent(q) + "&item_id=" + vote.item_id).then(function (r) {
      if ($("write-in-q").value.trim() !== q) return;  // a later keystroke has its own search
      out.textContent = "";
      var found = (r.data && r.data.members) || [];
      if (!found.length) { var none = document.createElement("li"); text(none, S.write_in_none); out.appendChild(none); }
      found.forEach(function (m) {
        var li = document.createElement("li"), b = document.createElement("button");
        b.type = "button";
        b.className = "seat-btn write-in-pick";
        text(b, m.name + " · " + m.member_no);
        // deputies-only offices are written in by 代表证号 (FORMAT.md), others by name
        b.addEventListener("click", function () { addWriteIn(w.roster_only ? m.member_no : m.name, m.name); });
        li.appendChild(b);
        out.appendChild(li);
      });
    }).catch(function () { /* offline: the deputy can search again */ });
  }

  function tapMark(b) {
    var k = b.getAttribute("data-key"), m = b.getAttribute("data-mark");
    st.ballot.active = +b.getAttribute("data-part");
    var p = cur(), places = p.vote.places, err = $("ballot-error");
    if (p.marks[k] === m) {
      delete p.marks[k];
    } else if (m === "for" && places != null && countFor(p) >= places) {
      text(err, overLimitText(places, p));
      err.hidden = false;
      b.classList.remove("refused");
      void b.offsetWidth; // restart the shake animation
      b.classList.add("refused");
      return;
    } else {
      p.marks[k] = m;
    }
    err.hidden = true;
    renderMarks();
  }

  function fullMarks(p) {
    var out = {};
    p.vote.candidates.forEach(function (c) { out[c.key] = p.marks[c.key] || "abstain"; });
    p.writeIns.forEach(function (w) { out["write_in:" + w.value] = "for"; });
    return out;
  }

  // 赞成 + 另选 > seats in any election: refused with the reason, nothing sent (per election).
  function overSelected() {
    return st.ballot.parts.filter(function (p) { return p.vote.places != null && countFor(p) > p.vote.places; })[0];
  }

  function showConfirm() {
    var over = overSelected(), set = st.ballot.set, first = st.ballot.parts[0];
    if (over) { // cannot happen through tapMark; never send it
      st.ballot.active = over.i;
      text($("ballot-error"), overLimitText(over.vote.places, over));
      $("ballot-error").hidden = false;
      return;
    }
    var v0 = first.vote;
    text($("confirm-title"), set ? setTitle(st.ballot.vote) : v0.title + (v0.round > 1 ? " · " + fmt(S.round, { n: v0.round }) : ""));
    var cnt = $("confirm-count");
    if (!set && v0.places != null) { text(cnt, fmt(S.count, { n: countFor(first), k: v0.places })); cnt.hidden = false; }
    else cnt.hidden = true;
    var body = $("confirm-list");
    body.textContent = "";
    st.ballot.parts.forEach(function (p) {
      var vote = p.vote;
      if (set) {
        var head = document.createElement("tr"), th = document.createElement("th");
        head.className = "set-head";
        th.colSpan = 2;
        text(th, vote.title + (vote.places != null ? "　" + fmt(S.count_election, { n: countFor(p), k: vote.places }) : ""));
        head.appendChild(th);
        body.appendChild(head);
      }
      vote.candidates.forEach(function (c) {
        var m = p.marks[c.key];
        body.appendChild(confirmRow(candTitle(vote, c), m ? markStyle(vote, m) : "none", m ? markLabel(vote, m) : S.unmarked));
      });
      p.writeIns.forEach(function (w) {
        var tr = confirmRow(fmt(S.write_in_label, { name: w.label }), "for", S.mark_for);
        tr.className = "write-in-row";
        body.appendChild(tr);
      });
    });
    show("confirm");
  }

  function confirmRow(title, style, label) {
    var tr = document.createElement("tr");
    var td1 = document.createElement("td"), td2 = document.createElement("td");
    text(td1, title);
    var span = document.createElement("span");
    span.className = "choice choice-" + style;
    text(span, label);
    td2.appendChild(span);
    tr.appendChild(td1);
    tr.appendChild(td2);
    return tr;
  }

  // One cast: its own retry id and its own receipt secret. The receipt is H(r) for a random
  // secret r, never a function of serial or marks, so the bundle's receipt list cannot be
  // matched to ballots (crypto/tablet.py receipt_hash_of). A set's casts share nothing.
  function castOf(p) {
    var b = p.ballot;
    return { round_ref: b.round_ref, serial: b.serial, prefix: b.prefix, signature: b.signature,
             marks: fullMarks(p), retry_id: BlindRSA.bytesToBase64url(BlindRSA.randomBytes(16)),
             receipt_hash: receiptHashOf(BlindRSA.bytesToHex(BlindRSA.randomBytes(16))) };
  }

  function confirmSend() {
    if (!st.ballot || st.sending) return;
    if (overSelected()) { show("ballot"); showConfirm(); return; }
    // Serialised once: a retry sends this very text again, so the server sees the same
    // submission and answers with the same receipt (intake is idempotent per submission).
    var parts = st.ballot.parts, set = st.ballot.set;
    st.pending = {
      key: st.ballot.key,
      title: setTitle(st.ballot.vote),
      secret: parts.every(function (p) { return !!p.vote.secret; }),
      set: set ? parts.map(function (p) { return p.vote.title; }) : null,
      body: JSON.stringify(set ? { casts: parts.map(castOf) } : castOf(parts[0]))
    };
    store(KEY_PENDING, st.pending);  // a reload resends this very body (same retry ids)
    send();
  }

  // H(r): the first 64 hex digits of SHA-384("ballot-service/receipt/v1\n" || hex r).
  function receiptHashOf(secretHex) {
    var bytes = new TextEncoder().encode("ballot-service/receipt/v1\n" + secretHex);
    return BlindRSA.bytesToHex(window.nobleHashes.sha384(bytes)).slice(0, 64);
  }

  // Forget the ballot and the choices (secret vote): memory and screen.
  function wipeBallot() {
    parkWriteIn();
    st.ballot = null;
    st.pending = null;
    store(KEY_BALLOT, null);
    store(KEY_PENDING, null);
    store(KEY_BLINDING, null);
    $("ballot-list").textContent = "";
    $("confirm-list").textContent = "";
    $("write-in-chosen").textContent = "";
    $("write-in-results").textContent = "";
    stopClock();
  }

  // The receipt of one cast, or of a set's casts ([{title, receipt}]): each with its election.
  function receiptOf(p, data) {
    if (!p.set) return data.receipt;
    return (data.receipts || []).map(function (x, i) { return { title: p.set[i], receipt: x.receipt }; });
  }

  function send() {
    var p = st.pending;
    if (!p || st.sending) return;
    st.sending = true;
    show("sending");
    api("POST", p.set ? "/api/terminal/cast-set" : "/api/terminal/cast", p.body, CAST_TIMEOUT_MS, p.secret).then(function (r) {
      st.sending = false;
      var e = firstError(r.data);
      if ((r.status === 200 || r.status === 201) && r.data && (r.data.receipt || r.data.receipts)) {
        var receipt = receiptOf(p, r.data);
        store(KEY_RECEIPT, { key: p.key, receipt: receipt });
        wipeBallot();
        showReceipt(p.title, receipt);
      } else if (r.status === 409 && e.reason === "reused") {
        wipeBallot();
        st.stickyKey = p.key;
        showVoted(p.title, null);
      } else if (r.status === 409 && e.reason === "late") {
        wipeBallot();
        st.stickyKey = p.key;
        showClosed(p.title, true);
      } else if (r.status === 401) {
        badCredential();
      } else if (r.status >= 500 || r.status === 429 || r.status === 408) {
        text($("neterror-detail"), fmt(S.server_error, { status: r.status }));
        show("neterror");
      } else if (r.status === 400 && e.errorType !== "BallotRefused") {
        // Marks the server could not read: back to the ballot, choices kept, nothing sent twice.
        st.pending = null;
        text($("ballot-error"), fmt(S.invalid_ballot, { msg: e.message }));
        $("ballot-error").hidden = false;
        show("ballot");
      } else {
        wipeBallot();
        st.stickyKey = p.key;
        text($("refused-detail"), fmt(S.refused_reason, { reason: (e.reason ? e.reason + " — " : "") + (e.message || r.status) }));
        show("refused");
      }
    }).catch(function (err) {
      st.sending = false;
      text($("neterror-detail"), S.net_error);
      show("neterror");
    });
  }

  // --- time limit -------------------------------------------------------------------------

  function parseUtc(s) {
    if (!s) return NaN;
    return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z");
  }

  function startClock() {
    stopClock();
    var deadline = st.ballot && parseUtc(st.ballot.vote.closes_at);
    var tag = $("ballot-timer");
    if (!deadline || isNaN(deadline)) { tag.hidden = true; return; }
    function tick() {
      var left = Math.round((deadline - (Date.now() + st.clockSkew)) / 1000);
      if (left <= 0) {
        text(tag, S.time_up);
        if (st.screen === "ballot" || st.screen === "confirm") {
          var key = st.ballot.key, title = setTitle(st.ballot.vote);
          wipeBallot();
          st.stickyKey = key;
          showClosed(title, false);
        }
        stopClock();
        return;
      }
      var mm = Math.floor(left / 60), ss = left % 60;
      text(tag, fmt(S.time_left, { t: mm + ":" + (ss < 10 ? "0" : "") + ss }));
      tag.hidden = false;
    }
    tick();
    st.tickTimer = setInterval(tick, 1000);
  }

  function stopClock() {
    if (st.tickTimer) clearInterval(st.tickTimer);
    st.tickTimer = null;
  }

  // --- reset ------------------------------------------------------------------------------

  // The server checks the secretariat's reset code and refuses during a vote; only then is
  // the tablet wiped. A credential the server no longer knows is wiped anyway.
  function requestReset() {
    var err = $("reset-error");
    err.hidden = true;
    api("POST", "/api/terminal/reset", JSON.stringify({ code: $("reset-code").value.trim() })).then(function (r) {
      if (r.status === 200 || r.status === 401) { resetTablet(); return; }
      var e = firstError(r.data);
      text(err, fmt(S.reset_failed, { msg: e.message || r.status }));
      err.hidden = false;
    }).catch(function () {
      text(err, S.net_error);
      err.hidden = false;
    });
  }

  function resetTablet() {
    $("reset-code").value = "";
    [KEY_CRED, KEY_RECEIPT, KEY_LAST, KEY_BALLOT, KEY_PENDING, KEY_BLINDING].forEach(function (k) { store(k, null); });
    st.credential = null;
    st.noBallot = {};
    st.stickyKey = null;
    wipeBallot();
    $("reset-dialog").hidden = true;
    text($("seat-name"), document.title);
    text($("session-name"), "");
    $("member-name").hidden = true;
    renderAttendance(null);
    showSetup("");
  }

  // --- wiring -----------------------------------------------------------------------------

  function start() {
    // Set-up link: /seat#credential=XYZ → localStorage, and out of the address bar and history.
    var hash = location.hash.replace(/^#/, "");
    if (hash) {
      var fromLink = null;
      try { fromLink = new URLSearchParams(hash).get("credential"); } catch (e) { fromLink = null; }
      if (fromLink) {
        store(KEY_CRED, fromLink.trim());
        store(KEY_RECEIPT, null);
        store(KEY_LAST, null);
      }
      history.replaceState(null, "", location.pathname + location.search);
    }
    st.credential = load(KEY_CRED, false);

    $("setup-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = $("setup-credential").value.trim();
      if (!v) return;
      store(KEY_CRED, v);
      st.credential = v;
      $("setup-credential").value = "";
      show("loading");
      pollNow();
    });
    $("setup-credential").addEventListener("input", function () { $("setup-error").hidden = true; });
    $("checkin-form").addEventListener("submit", function (ev) { ev.preventDefault(); checkin($("checkin-member")); });
    $("card-form").addEventListener("submit", function (ev) { ev.preventDefault(); checkin($("checkin-card")); });
    $("ballot-list").addEventListener("click", function (ev) {
      var b = ev.target.closest && ev.target.closest("button.mark");
      if (b && st.ballot) tapMark(b);
      var w = ev.target.closest && ev.target.closest("button.write-in-open");
      if (w && st.ballot) openWriteIn(+w.getAttribute("data-part"));
    });
    $("ballot-submit").addEventListener("click", function () { if (st.ballot) showConfirm(); });
    var searchTimer = null;
    $("write-in-q").addEventListener("input", function () {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(searchRoster, 250);
    });
    $("write-in-typed").addEventListener("click", function () { if (st.ballot) addWriteIn($("write-in-q").value); });
    $("confirm-back").addEventListener("click", function () { if (st.ballot) show("ballot"); });
    $("confirm-send").addEventListener("click", confirmSend);
    $("neterror-retry").addEventListener("click", send);
    $("reset-open").addEventListener("click", function () { $("reset-dialog").hidden = false; $("reset-cancel").focus(); });
    $("reset-cancel").addEventListener("click", function () {
      $("reset-dialog").hidden = true;
      $("reset-code").value = "";
      $("reset-error").hidden = true;
    });
    $("reset-confirm").addEventListener("click", requestReset);
    window.addEventListener("online", function () { if (st.credential && !QUIET[st.screen]) pollNow(); });

    if (!st.credential) { showSetup(""); return; }
    show("loading");
    pollNow();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
