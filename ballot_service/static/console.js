// Console: live vote progress, the countdown, and the printing job's progress bar.
(function () {
  "use strict";
  var progress = document.getElementById("progress");
  if (progress && progress.dataset.open === "1") {
    var url = "/console/items/" + progress.dataset.item + "/progress";
    var poll = function () {
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (p) {
        document.getElementById("issued").textContent = p.issued;
        document.getElementById("returned").textContent = p.returned;
        var nv = document.getElementById("not-voted"), names = document.getElementById("not-voted-names");
        if (nv && p.not_voted !== null) nv.textContent = p.not_voted;
        if (names && p.not_voted_names) names.textContent = p.not_voted_names.join("、");
        var ni = document.getElementById("not-issued");  // present, no ballot taken (P − I)
        if (ni && p.not_issued !== null) { ni.textContent = p.not_issued; ni.parentNode.hidden = p.not_issued <= 0; }
        (p.ballot_set || []).forEach(function (m) {  // a ballot set: each election's own counts
          var row = document.querySelector('#set-progress tr[data-item="' + m.item_id + '"]');
          if (row) { row.querySelector(".set-issued").textContent = m.issued; row.querySelector(".set-returned").textContent = m.returned; }
        });
        if (p.round_status !== "open") { location.reload(); return; }
        setTimeout(poll, 2000);
      }).catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 2000);
  }
  var left = document.getElementById("time-left");
  if (left) {
    var closes = Date.parse(left.dataset.closes);
    var tick = function () {
      var s = Math.max(0, Math.round((closes - Date.now()) / 1000));
      left.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
      if (s > 0) { setTimeout(tick, 1000); return; }
      // The vote stays open when its time is up: the secretariat closes it or extends the time.
      var up = document.getElementById("time-up");
      if (up) up.hidden = false;
    };
    tick();
  }
  // 补发选票 as a paper ballot (hybrid vote): the answer is the PDF, downloaded once; the page
  // stays and says what was printed (X-Console-Message), counting the allowance.
  var replacement = document.getElementById("replacement-form");
  if (replacement) {
    replacement.addEventListener("submit", function (ev) {
      var channel = replacement.querySelector("select[name=channel]");
      if (!channel || channel.value !== "paper") return;
      ev.preventDefault();
      var button = replacement.querySelector("button[type=submit]");
      button.disabled = true;
      fetch(replacement.action, {method: "POST", body: new FormData(replacement), credentials: "same-origin",
                                 redirect: "manual"})
        .then(function (r) {
          if ((r.headers.get("Content-Type") || "").indexOf("application/pdf") !== 0) {
            location.assign(location.pathname + location.search);  // refused: the item page shows the reason
            return null;
          }
          return r.blob().then(function (blob) {
            var a = document.createElement("a"), m = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
            a.href = URL.createObjectURL(blob); a.download = m ? m[1] : "paper-ballot.pdf";
            document.body.appendChild(a); a.click(); a.remove();
            setTimeout(function () { URL.revokeObjectURL(a.href); }, 60000);
            var said = document.createElement("div");
            said.className = "flash ok"; said.setAttribute("role", "status");
            said.textContent = decodeURIComponent(r.headers.get("X-Console-Message") || "");
            var main = document.querySelector("main");
            main.querySelectorAll(".flash").forEach(function (f) { f.remove(); });
            main.insertBefore(said, main.firstChild);
            var allowed = document.getElementById("paper-allowed");
            if (allowed && r.headers.get("X-Paper-Allowed")) allowed.textContent = r.headers.get("X-Paper-Allowed");
            replacement.reset();
          });
        })
        .catch(function () { replacement.submit(); })
        .then(function () { button.disabled = false; });
    });
  }
  var job = document.getElementById("print-job");
  if (job) {
    var bar = job.querySelector("progress"), text = job.querySelector(".job-text");
    var check = function () {
      fetch("/console/jobs/" + job.dataset.job, {credentials: "same-origin"}).then(function (r) { return r.json(); })
        .then(function (s) {
          bar.max = s.total; bar.value = s.done;
          text.textContent = s.done + " / " + s.total;
          if (s.state === "running") { setTimeout(check, 700); return; }
          if (s.state === "failed") { text.textContent = s.error; job.classList.add("bad"); return; }
          var u = new URL(location.href); u.searchParams.delete("job"); location.replace(u.toString());
        }).catch(function () { setTimeout(check, 2000); });
    };
    check();
  }
})();
