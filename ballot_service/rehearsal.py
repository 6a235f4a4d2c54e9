"""Rehearse (预演) a scenario file (shared/scenarios/FORMAT.md) through the same HTTP
endpoints, signing, intake, tally, record and audit code a live session uses.

The app runs in-process behind Flask's test client: every step is a real request to the
real WSGI app, with real credentials, over a real database.

`paper_via_scanner` (opt-in, `rehearse --paper-via-scanner`): paper items are counted through
the counting station's scanner instead of marks keyed at /api/station/paper: their ballots
are printed, the scenario's marks drawn on them, the pages uploaded as one scan file, and the
pages the reader sends to adjudication decided by the two tellers as the scenario says. The
results must be the same. An evaluation's ballot has a box per option (no 弃权 box: a subject
left unmarked abstains), and a `void` mark is two options marked for one subject.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ballot_service import create_app
from ballot_service.bundle.export import export_bundle
from ballot_service.crypto import blind_rsa, tablet
from ballot_service.domain.operators import create_operator
from ballot_service.errors import InvalidInput
from ballot_service.formats.encoding import b64url_decode, b64url_encode
from ballot_service.formats.scenario import load_scenario, present_ids, roster_of
from ballot_service.migrate import upgrade
from ballot_service.models import Item, Record
from ballot_service.render import announcement, record_pdf
from ballot_service.render.marked_scan import Sheet, scan_file
from ballot_service.render.paper import BallotLayout
from ballot_service.vocab import (
    Channel,
    ItemStatus,
    OperatorRole,
    Presence,
    TellerRole,
    TerminalKind,
)


class Rehearsal:
    """Drives one scenario against a fresh app; every call is an HTTP request."""

    def __init__(self, scenario: dict, out: Path, database_url: str | None = None, paper_via_scanner: bool = False):
        self.s = scenario
        self.via_scanner = paper_via_scanner
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        work = out / ".work"
        work.mkdir(exist_ok=True)
        url = database_url or f"sqlite:///{work / 'rehearsal.sqlite3'}"
        if database_url is None:
            for f in work.glob("rehearsal.sqlite3*"):
                f.unlink()
        (work / "keys").mkdir(exist_ok=True)
        for f in (work / "keys").glob("*"):
            f.unlink()
        upgrade(url)
        passphrase = secrets.token_urlsafe(24)
        # Kept beside the keys (0600) so the rehearsal's database can be opened again afterwards.
        (work / "passphrase").touch(mode=0o600)
        (work / "passphrase").write_text(passphrase, encoding="utf-8")
        self.app = create_app({"BALLOT_DATABASE_URL": url, "BALLOT_INSTANCE_PATH": str(work),
                               "BALLOT_KEYS_DIR": str(work / "keys"), "BALLOT_BALLOTS_DIR": str(work),
                               "BALLOT_KEY_PASSPHRASE": passphrase,
                               "BALLOT_SECRET_KEY": secrets.token_hex(32)})
        self.http = self.app.test_client()
        password = secrets.token_urlsafe(16)
        with self.app.app_context():
            db = self.app.extensions["ballot_sessionmaker"]()
            create_operator(db, "rehearsal", password, OperatorRole.SECRETARIAT)
            db.commit()
            db.close()
        self.call("POST", "/api/admin/login", {"username": "rehearsal", "password": password})

    def call(self, method: str, url: str, body=None, *, credential: str | None = None, expect=(200, 201)):
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        resp = self.http.open(url, method=method, json=body, headers=headers)
        data = resp.get_json(silent=True)
        if expect is not None and resp.status_code not in expect:
            raise RuntimeError(f"{method} {url} answered {resp.status_code}: {data}")
        return resp.status_code, data

    def run(self) -> dict:
        s = self.s
        roster = roster_of(s)
        _, body = self.call("POST", "/api/admin/bodies", s["body"])
        self.body_id = body["id"]
        self.call("POST", f"/api/admin/bodies/{self.body_id}/key")
        self.call("POST", f"/api/admin/bodies/{self.body_id}/roster",
                  {"members": [{"id": m["id"], "name": m["name"], "seat": m["id"]} for m in roster]})
        _, sitting = self.call("POST", "/api/admin/sessions", {"body_id": self.body_id, "name": s["session"]["name"]})
        self.sid = sitting["id"]
        _, terms = self.call("POST", f"/api/admin/sessions/{self.sid}/terminals", {"terminals": [
            {"name": f"席位{m['id']}", "kind": TerminalKind.SEAT, "seat": m["id"]} for m in roster]
            + [{"name": "计票站", "kind": TerminalKind.COUNTING_STATION},
               {"name": "计票站 计票人", "kind": TerminalKind.COUNTING_STATION, "holder": "计票员甲", "teller_role": TellerRole.COUNTER},
               {"name": "计票站 监票人", "kind": TerminalKind.COUNTING_STATION, "holder": "监票员乙",
                "teller_role": TellerRole.SCRUTINEER}]})
        self.cred = {t["seat"]: t["credential"] for t in terms["terminals"] if t["kind"] == TerminalKind.SEAT}
        stations = [t for t in terms["terminals"] if t["kind"] == TerminalKind.COUNTING_STATION]
        self.station = stations[0]["credential"]
        # Two tellers, each with their own credential: one enters a tally sheet, the other confirms.
        self.tellers = {t["teller_role"]: t["credential"] for t in stations if t.get("teller_role")}
        self.roster = roster
        self.present: set[str] = set()
        self._keys: dict[int, str] = {}
        self._at = "$.items"
        self._set_present(present_ids(s["present"], roster))
        for n, item in enumerate(s["items"]):
            self._at = f"$.items[{n}]"  # the JSON path an error names
            self._run_item(item)
        _, results = self.call("GET", f"/api/admin/sessions/{self.sid}/results")
        # 闭会: the bundle then carries the signed session-close checkpoint.
        self.call("POST", f"/api/admin/sessions/{self.sid}/close")
        return results

    def _set_present(self, ids: list[str]) -> None:
        want = set(ids)
        gone = sorted(self.present - want)
        new = [i for i in ids if i not in self.present]
        if gone:
            self.call("POST", f"/api/admin/sessions/{self.sid}/attendance", {"members": gone, "status": Presence.ABSENT})
        for mid in new:  # members check in at their own seat terminal
            self.call("POST", "/api/terminal/checkin", {"member": mid}, credential=self.cred[mid])
        self.present = want

    def _run_item(self, item: dict) -> None:
        spec = {k: item[k] for k in ("key", "kind", "title", "places", "candidates", "rule", "secret", "channel",
                                     "options", "office", "by_election") if k in item}
        _, created = self.call("POST", f"/api/admin/sessions/{self.sid}/items", spec)
        iid = created["id"]
        self._keys[iid] = item["key"]
        if "present" in item:
            self._set_present(present_ids(item["present"], self.roster))
        channel = item.get("channel", "terminal")
        ok = self._open(iid)
        if not ok:
            return
        if channel == Channel.TALLY_SHEET:
            self.call("POST", f"/api/admin/items/{iid}/close")
            sheet = dict(item["sheet"])
            sheet["counts"] = {k: {"void": 0, **v} for k, v in sheet["counts"].items()}
            for role in (TellerRole.COUNTER, TellerRole.SCRUTINEER):
                self.call("POST", "/api/station/tally-sheet", {"item_id": iid, "sheet": sheet},
                          credential=self.tellers[role])
        else:
            self._cast_all(iid, channel, item.get("ballots", []), item.get("issued"))
            self.call("POST", f"/api/admin/items/{iid}/close")
        _, result = self.call("POST", f"/api/admin/items/{iid}/tally")
        if result["status"] == ItemStatus.RUNOFF_PENDING and "runoff" in item:
            if "present" in item["runoff"]:
                self._set_present(present_ids(item["runoff"]["present"], self.roster))
            if self._open(iid):
                self._cast_all(iid, channel, item["runoff"]["ballots"], None)
                self.call("POST", f"/api/admin/items/{iid}/close")
                _, result = self.call("POST", f"/api/admin/items/{iid}/tally")
        if "another" in item and result["status"] == ItemStatus.DECIDED and self._unfilled(iid):
            result = self._another(iid, channel, item["another"])
        if result["status"] in (ItemStatus.DECIDED, ItemStatus.VOID, ItemStatus.QUORUM_NOT_MET):
            self.call("POST", f"/api/admin/items/{iid}/record")

    def _unfilled(self, iid: int) -> int:
        _, results = self.call("GET", f"/api/admin/sessions/{self.sid}/results")
        return next(r for r in results["items"] if r["key"] == self._keys[iid])["unfilled"]

    def _another(self, iid: int, channel: str, spec: dict) -> dict:
        """另行选举: one console step makes the round; then it is voted like round 1 (and re-voted if tied)."""
        body = {"candidates": spec["candidates"]} if "candidates" in spec else {}
        self.call("POST", f"/api/admin/items/{iid}/another", body)
        result = {"status": ItemStatus.QUORUM_NOT_MET}
        for part in (spec, spec.get("runoff")):
            if part is None or (part is not spec and result["status"] != ItemStatus.RUNOFF_PENDING):
                break
            if "present" in part:
                self._set_present(present_ids(part["present"], self.roster))
            if not self._open(iid):
                break
            self._cast_all(iid, channel, part["ballots"], None)
            self.call("POST", f"/api/admin/items/{iid}/close")
            _, result = self.call("POST", f"/api/admin/items/{iid}/tally")
        return result

    def _open(self, iid: int) -> bool:
        for mid in self.present:  # the tablets are on and polling: a tablet vote needs them ready
            self.call("GET", "/api/terminal/state", credential=self.cred[mid])
        status, data = self.call("POST", f"/api/admin/items/{iid}/open", expect=(200, 409))
        if status == 200:
            return True
        if data["errors"][0]["errorType"] != "QuorumNotMet":
            raise RuntimeError(f"opening item {iid} failed: {data}")
        self.call("POST", f"/api/admin/items/{iid}/quorum-failed")
        return False

    def _cast_all(self, iid: int, channel: str, ballots: list[dict], issued: int | None) -> None:
        # 另选他人 travel in the marks as "write_in:<name>": "for" (openapi.yaml)
        expanded = [{**b, "marks": {**b["marks"], **{f"write_in:{w}": "for" for w in b.get("write_ins", [])}}}
                    for b in ballots for _ in range(b.get("repeat", 1))]
        genuine = [b for b in expanded if not (b.get("forged") or b.get("reuse") or b.get("spare"))]
        used: list[tuple[object, dict]] = []  # (ballot: a terminal ballot's fields or a paper token's text, marks)
        if channel == Channel.TERMINAL:
            voters = [m["id"] for m in self.roster if m["id"] in self.present]
            if len(genuine) > len(voters):
                raise InvalidInput(f"{len(genuine)} genuine ballots but only {len(voters)} members present",
                                   where=f"{self._at}.ballots", zh=f"有效选票 {len(genuine)} 张，但实到代表只有 {len(voters)} 人")
            # Every present member's tablet takes its blind-signed ballot as the vote opens;
            # those who vote then cast it (anonymously: no credential on a secret cast).
            signed = [self._blind_ballot(self.cred[mid]) for mid in voters]
            for mid, ballot, b in zip(voters, signed, genuine):
                self.call("POST", "/api/terminal/cast", {**ballot, "marks": b["marks"],
                                                         "retry_id": tablet.new_retry_id()},
                          credential=self.cred[mid])
                used.append((ballot, b["marks"]))
            submit_cred, endpoint = (self.cred[voters[0]] if voters else self.station), "/api/terminal/cast"
        else:
            n_issued = len(self.present) if issued is None else issued
            n_spare = sum(1 for b in expanded if b.get("spare"))
            _, printed = self.call("POST", f"/api/admin/items/{iid}/paper-ballots",
                                   {"count": max(1, n_issued + n_spare)})
            texts = printed["ballots"]
            if n_issued:  # the desk activates the stack it hands out, as one count
                self.call("POST", "/api/station/hand-out", {"ballots": texts[:n_issued]}, credential=self.station)
            if len(genuine) > n_issued:
                raise InvalidInput(f"{len(genuine)} genuine ballots but only {n_issued} issued", where=f"{self._at}.ballots",
                                   zh=f"有效选票 {len(genuine)} 张，但只发出 {n_issued} 张")
            if self.via_scanner:
                self._scan_all(iid, texts, genuine, expanded, n_issued)
                return
            for t, b in zip(texts, genuine):
                self.call("POST", "/api/station/paper", {"ballot": t, "marks": b["marks"]}, credential=self.station)
                used.append((t, b["marks"]))
            self.spares = texts[n_issued:]
            submit_cred, endpoint = self.station, "/api/station/paper"
        for b in expanded:
            if b.get("forged"):
                forged = _forge_terminal(used[0][0] if used else None) if channel == Channel.TERMINAL \
                    else _forge(used[0][0] if used else None, iid)
                self._expect_refused(endpoint, forged, b["marks"], submit_cred)
            elif b.get("reuse"):
                ballot = next((t for t, marks in used if marks != b["marks"]), used[0][0] if used else None)
                self._expect_refused(endpoint, ballot, b["marks"], submit_cred)
            elif b.get("spare"):
                self._expect_refused(endpoint, self.spares.pop(), b["marks"], submit_cred)

    def _scan_all(self, iid: int, texts: list[str], genuine: list[dict], expanded: list[dict], n_issued: int) -> None:
        """Count a paper round through the scanner (module docstring): the genuine ballots, then
        the forged, reused and spare ones, on one scan file."""
        layout, keys = self._layout(iid)
        columns = tuple(m for m, _ in layout.marks)
        spares = texts[n_issued:]
        pages = list(zip(texts, (b["marks"] for b in genuine), [True] * len(genuine)))
        for b in expanded:
            if b.get("forged"):
                pages.append((_forge(texts[0] if genuine else None, iid), b["marks"], False))
            elif b.get("reuse"):
                used = next((t for t, m, _ in pages[:len(genuine)] if m != b["marks"]), texts[0])
                pages.append((used, b["marks"], False))
            elif b.get("spare"):
                pages.append((spares.pop(), b["marks"], False))
        if not pages:
            return
        # void: two boxes marked for one candidate; a mark without a box (an evaluation's 弃权) is none
        sheets = [Sheet(t, [(k, m) for k, v in marks.items() if not k.startswith("write_in:")
                            for m in (columns[:2] if v == "void" else (v,)) if m in columns],
                        scribble=any(k.startswith("write_in:") for k in marks)) for t, marks, _ in pages]
        resp = self.http.post("/api/station/scans?dpi=200", data=scan_file(layout, keys, sheets),
                              headers={"Authorization": f"Bearer {self.station}"}, content_type="image/tiff")
        if resp.status_code != 201:
            raise RuntimeError(f"the scan upload answered {resp.status_code}: {resp.get_json(silent=True)}")
        for (text, marks, counts), page in zip(pages, resp.get_json()["pages"]):
            status = page["status"]
            for role in (TellerRole.COUNTER, TellerRole.SCRUTINEER) if status == "queued" else ():  # 裁定, as the scenario says
                _, out = self.call("POST", f"/api/station/pages/{page['id']}/decision",
                                   {"decision": {"ballot": text, "marks": marks}}, credential=self.tellers[role])
                status = out["status"]
            if status != ("counted" if counts else "refused"):
                raise RuntimeError(f"a scanned page ended {status} ({page['outcome']}), not as the scenario says")

    def _layout(self, iid: int) -> tuple[BallotLayout, tuple[str, ...]]:
        """The printed layout of the item's current round and its candidate keys in printed order."""
        with self.app.app_context():
            db = self.app.extensions["ballot_sessionmaker"]()
            try:
                item = db.get(Item, iid)
                rnd = item.rounds[-1]
                return BallotLayout.from_item(item, rnd), tuple(rnd.candidate_keys)
            finally:
                db.close()

    def _blind_ballot(self, cred: str) -> dict:
        """A tablet's blind issuance: check the announced key, blind, get it signed, unblind."""
        return tablet.take_ballot(self.call, cred)

    def _expect_refused(self, endpoint: str, ballot, marks: dict, credential: str) -> None:
        if isinstance(ballot, dict):  # a terminal ballot: resent with a fresh retry id
            body = {**ballot, "marks": marks, "retry_id": tablet.new_retry_id()}
        else:
            body = {"ballot": ballot or "BS1.x.y", "marks": marks}
        status, data = self.call("POST", endpoint, body, credential=credential, expect=None)
        if status < 400:
            raise RuntimeError(f"a submission meant to be refused was accepted: {data}")

    def write_outputs(self, results: dict) -> None:
        (self.out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", "utf-8")
        rec_dir = self.out / "records"
        rec_dir.mkdir(exist_ok=True)
        with self.app.app_context():
            db = self.app.extensions["ballot_sessionmaker"]()
            for rec in db.query(Record).all():
                content = json.loads(rec.body_json)
                stem = content["item"]["key"]
                (rec_dir / f"{stem}.json").write_text(json.dumps(
                    {"record": content, "signed": rec.body_json, "signature": rec.signature,
                     "key_fingerprint": rec.key_fingerprint}, ensure_ascii=False, indent=1) + "\n", "utf-8")
                (rec_dir / f"{stem}.announcement.txt").write_text(announcement.announcement(content) + "\n", "utf-8")
                (rec_dir / f"{stem}.pdf").write_bytes(record_pdf.render(content, rec.signature))
            export_bundle(db, self.app.config["SETTINGS"], self.out / "audit")
            db.close()


def _forge(genuine_text: str | None, iid: int) -> str:
    """A ballot whose signature this service never made: a genuine payload, signed by another key."""
    if genuine_text is None:
        return "BS1.e30.AAAA"
    prefix, payload, _sig = genuine_text.split(".")
    other = Ed25519PrivateKey.generate().sign(b64url_decode(payload))
    return f"{prefix}.{payload}.{b64url_encode(other)}"


def _forge_terminal(genuine: dict | None) -> dict:
    """A terminal ballot whose signature the round's key never made: a fresh serial signed
    (blindly, then unblinded) by another RSA key."""
    other = blind_rsa.generate_round_key()
    ref = genuine["round_ref"] if genuine else "r1"
    pending = tablet.start(other.public_key(), ref)
    sig = blind_rsa.blind_sign(other, pending.blinded)
    return tablet.finish(other.public_key(), pending, b64url_encode(sig))


def rehearse(path: str | Path, out: str | Path, database_url: str | None = None,
             paper_via_scanner: bool = False) -> dict:
    scenario = load_scenario(path)
    r = Rehearsal(scenario, Path(out), database_url, paper_via_scanner)
    results = r.run()
    r.write_outputs(results)
    return results
