"""Rehearse (预演) a scenario file (shared/scenarios/FORMAT.md) through the same HTTP
endpoints, signing, intake, tally, record and audit code a live session uses.

The app runs in-process behind Flask's test client: every step is a real request to the
real WSGI app, with real credentials, over a real database.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import jsonschema

from ballot_service.errors import InvalidInput
from ballot_service.formats.ballots import MAX_PAPER_BATCH
from ballot_service.formats.encoding import b64url_decode, b64url_encode
from ballot_service.render import announcement

_present = {"oneOf": [
    {"type": "object", "properties": {"count": {"type": "integer", "minimum": 0}},
     "required": ["count"], "additionalProperties": False},
    {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
     "required": ["ids"], "additionalProperties": False}]}
_ballot = {"type": "object", "additionalProperties": False, "required": ["marks"], "properties": {
    "marks": {"type": "object", "additionalProperties": {"enum": ["for", "against", "abstain", "void"]}},
    "repeat": {"type": "integer", "minimum": 1}, "forged": {"type": "boolean"},
    "reuse": {"type": "boolean"}, "spare": {"type": "boolean"}}}
_counts = {"type": "object", "additionalProperties": False, "required": ["for", "against", "abstain"],
           "properties": {m: {"type": "integer", "minimum": 0} for m in ("for", "against", "abstain", "void")}}
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["format", "body", "session", "roster", "present", "items"],
    "properties": {
        "format": {"const": "ballot-scenario/1"},
        "body": {"type": "object", "additionalProperties": False, "required": ["name", "kind"],
                 "properties": {"name": {"type": "string", "minLength": 1},
                                "kind": {"enum": ["congress", "standing_committee"]}}},
        "session": {"type": "object", "additionalProperties": False, "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}}},
        "roster": {"oneOf": [
            {"type": "object", "additionalProperties": False, "required": ["size"],
             "properties": {"size": {"type": "integer", "minimum": 1, "maximum": MAX_PAPER_BATCH}}},
            {"type": "object", "additionalProperties": False, "required": ["members"],
             "properties": {"members": {"type": "array", "minItems": 1, "items": {
                 "type": "object", "additionalProperties": False, "required": ["id", "name"],
                 "properties": {"id": {"type": "string", "minLength": 1},
                                "name": {"type": "string", "minLength": 1}}}}}}]},
        "present": _present,
        "items": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "kind", "title"],
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "kind": {"enum": ["livelihood_projects", "appointment", "resolution"]},
                "title": {"type": "string", "minLength": 1},
                "secret": {"type": "boolean"},
                "channel": {"enum": ["terminal", "paper", "tally_sheet"]},
                "places": {"type": "integer", "minimum": 1},
                "candidates": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["key", "title"],
                    "properties": {"key": {"type": "string", "minLength": 1}, "title": {"type": "string"},
                                   "description": {"type": "string"}}}},
                "rule": {"type": "object", "additionalProperties": False, "properties": {
                    "base": {"enum": ["members", "present", "valid"]},
                    "majority": {"enum": ["half", "two_thirds"]}}},
                "present": _present,
                "issued": {"type": "integer", "minimum": 0},
                "ballots": {"type": "array", "items": _ballot},
                "sheet": {"type": "object", "additionalProperties": False,
                          "required": ["issued", "returned", "invalid", "counts"],
                          "properties": {"issued": {"type": "integer", "minimum": 0},
                                         "returned": {"type": "integer", "minimum": 0},
                                         "invalid": {"type": "integer", "minimum": 0},
                                         "counts": {"type": "object", "additionalProperties": _counts}}},
                "runoff": {"type": "object", "additionalProperties": False, "required": ["ballots"],
                           "properties": {"present": _present, "ballots": {"type": "array", "items": _ballot}}},
            }}},
    },
}


def json_path(path) -> str:
    out = "$"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def load_scenario(path: str | Path) -> dict:
    """Read and validate a scenario; refuse it with the JSON path at fault."""
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read scenario: {exc.strerror}", where=str(path)) from None
    except UnicodeDecodeError:
        raise InvalidInput("scenario is not UTF-8 text", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                           where=str(path)) from None
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        e = errors[0]
        # oneOf failures are vague; report the deepest underlying cause.
        while e.context:
            e = sorted(e.context, key=lambda c: -len(c.absolute_path))[0]
        raise InvalidInput(e.message, where=json_path(e.absolute_path))
    _check_meaning(data)
    return data


def _check_meaning(s: dict) -> None:
    roster = _roster(s)
    ids = [m["id"] for m in roster]
    if len(set(ids)) != len(ids):
        raise InvalidInput("duplicate member id in roster", where="$.roster.members")
    known = set(ids)
    _check_present(s["present"], known, "$.present", len(ids))
    keys = set()
    for i, item in enumerate(s["items"]):
        at = f"$.items[{i}]"
        if item["key"] in keys:
            raise InvalidInput(f"duplicate item key {item['key']!r}", where=f"{at}.key")
        keys.add(item["key"])
        if item["kind"] == "resolution":
            if "candidates" in item:
                raise InvalidInput("a resolution has no candidates (its one candidate is 'motion')",
                                   where=f"{at}.candidates")
            cands = ["motion"]
        else:
            if not item.get("candidates"):
                raise InvalidInput("candidates are required", where=f"{at}.candidates")
            cands = [c["key"] for c in item["candidates"]]
        if item["kind"] == "livelihood_projects" and "places" not in item:
            raise InvalidInput("places is required for livelihood_projects", where=f"{at}.places")
        if item["kind"] != "livelihood_projects" and "places" in item:
            raise InvalidInput("places is only for livelihood_projects", where=f"{at}.places")
        channel = item.get("channel", "terminal")
        if channel == "tally_sheet":
            if "sheet" not in item:
                raise InvalidInput("a tally_sheet item needs a sheet", where=f"{at}.sheet")
            if "ballots" in item:
                raise InvalidInput("a tally_sheet item has a sheet, not ballots", where=f"{at}.ballots")
            for k in item["sheet"]["counts"]:
                if k not in cands:
                    raise InvalidInput(f"{k!r} is not a candidate", where=f"{at}.sheet.counts.{k}")
        elif "sheet" in item:
            raise InvalidInput("only tally_sheet items have a sheet", where=f"{at}.sheet")
        if "issued" in item and channel != "paper":
            raise InvalidInput("issued is for paper items only", where=f"{at}.issued")
        if "present" in item:
            _check_present(item["present"], known, f"{at}.present", len(ids))
        for field in ("ballots",):
            for j, b in enumerate(item.get(field, [])):
                _check_ballot(b, cands, channel, f"{at}.ballots[{j}]")
        if "runoff" in item:
            if item["kind"] != "livelihood_projects":
                raise InvalidInput("only livelihood_projects have runoffs", where=f"{at}.runoff")
            if "present" in item["runoff"]:
                _check_present(item["runoff"]["present"], known, f"{at}.runoff.present", len(ids))
            for j, b in enumerate(item["runoff"]["ballots"]):
                _check_ballot(b, cands, channel, f"{at}.runoff.ballots[{j}]")


def _check_ballot(b: dict, cands: list[str], channel: str, at: str) -> None:
    for k, v in b["marks"].items():
        if k not in cands:
            raise InvalidInput(f"{k!r} is not a candidate of this item", where=f"{at}.marks.{k}")
        if v == "void" and channel != "paper":
            raise InvalidInput("'void' marks exist only on paper", where=f"{at}.marks.{k}")
    if b.get("spare") and channel != "paper":
        raise InvalidInput("spare ballots exist only on paper", where=f"{at}.spare")
    if sum(bool(b.get(f)) for f in ("forged", "reuse", "spare")) > 1:
        raise InvalidInput("a ballot is at most one of forged, reuse, spare", where=at)


def _check_present(spec: dict, known: set[str], at: str, size: int) -> None:
    if "count" in spec and spec["count"] > size:
        raise InvalidInput(f"present count {spec['count']} exceeds the roster ({size})", where=f"{at}.count")
    for j, i in enumerate(spec.get("ids", [])):
        if i not in known:
            raise InvalidInput(f"{i!r} is not on the roster", where=f"{at}.ids[{j}]")


def _roster(s: dict) -> list[dict]:
    r = s["roster"]
    if "size" in r:
        width = max(4, len(str(r["size"])))
        return [{"id": f"M{n:0{width}d}", "name": f"代表{n:0{width}d}"} for n in range(1, r["size"] + 1)]
    return r["members"]


def _present_ids(spec: dict, roster: list[dict]) -> list[str]:
    if "count" in spec:
        return [m["id"] for m in roster[:spec["count"]]]
    wanted = set(spec["ids"])
    return [m["id"] for m in roster if m["id"] in wanted]


class Rehearsal:
    """Drives one scenario against a fresh app; every call is an HTTP request."""

    def __init__(self, scenario: dict, out: Path, database_url: str | None = None):
        from ballot_service import create_app
        from ballot_service.domain.operators import create_operator
        from ballot_service.migrate import upgrade

        self.s = scenario
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
        self.app = create_app({"BALLOT_DATABASE_URL": url, "BALLOT_INSTANCE_PATH": str(work),
                               "BALLOT_KEYS_DIR": str(work / "keys"), "BALLOT_BALLOTS_DIR": str(work),
                               "BALLOT_KEY_PASSPHRASE": secrets.token_urlsafe(24),
                               "BALLOT_SECRET_KEY": secrets.token_hex(32)})
        self.http = self.app.test_client()
        password = secrets.token_urlsafe(16)
        with self.app.app_context():
            db = self.app.extensions["ballot_sessionmaker"]()
            create_operator(db, "rehearsal", password, "secretariat")
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
        roster = _roster(s)
        _, body = self.call("POST", "/api/admin/bodies", s["body"])
        self.body_id = body["id"]
        self.call("POST", f"/api/admin/bodies/{self.body_id}/key")
        self.call("POST", f"/api/admin/bodies/{self.body_id}/roster",
                  {"members": [{"id": m["id"], "name": m["name"], "seat": m["id"]} for m in roster]})
        _, sitting = self.call("POST", "/api/admin/sessions", {"body_id": self.body_id, "name": s["session"]["name"]})
        self.sid = sitting["id"]
        _, terms = self.call("POST", f"/api/admin/sessions/{self.sid}/terminals", {"terminals": [
            {"name": f"席位{m['id']}", "kind": "seat", "seat": m["id"]} for m in roster]
            + [{"name": "计票站", "kind": "counting_station"}]})
        self.cred = {t["seat"]: t["credential"] for t in terms["terminals"] if t["kind"] == "seat"}
        self.station = next(t["credential"] for t in terms["terminals"] if t["kind"] == "counting_station")
        self.roster = roster
        self.present: set[str] = set()
        self._set_present(_present_ids(s["present"], roster))
        for item in s["items"]:
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
            self.call("POST", f"/api/admin/sessions/{self.sid}/attendance", {"members": gone, "status": "absent"})
        for mid in new:  # members check in at their own seat terminal
            self.call("POST", "/api/terminal/checkin", {"member": mid}, credential=self.cred[mid])
        self.present = want

    def _run_item(self, item: dict) -> None:
        spec = {k: item[k] for k in ("key", "kind", "title", "places", "candidates", "rule", "secret", "channel")
                if k in item}
        _, created = self.call("POST", f"/api/admin/sessions/{self.sid}/items", spec)
        iid = created["id"]
        if "present" in item:
            self._set_present(_present_ids(item["present"], self.roster))
        channel = item.get("channel", "terminal")
        ok = self._open(iid)
        if not ok:
            return
        if channel == "tally_sheet":
            self.call("POST", f"/api/admin/items/{iid}/close")
            sheet = dict(item["sheet"])
            sheet["counts"] = {k: {"void": 0, **v} for k, v in sheet["counts"].items()}
            self.call("POST", "/api/station/tally-sheet", {"item_id": iid, "teller": "计票员甲", "sheet": sheet},
                      credential=self.station)
            self.call("POST", "/api/station/tally-sheet", {"item_id": iid, "teller": "计票员乙", "sheet": sheet},
                      credential=self.station)
        else:
            self._cast_all(iid, channel, item.get("ballots", []), item.get("issued"))
            self.call("POST", f"/api/admin/items/{iid}/close")
        _, result = self.call("POST", f"/api/admin/items/{iid}/tally")
        if result["status"] == "runoff_pending" and "runoff" in item:
            if "present" in item["runoff"]:
                self._set_present(_present_ids(item["runoff"]["present"], self.roster))
            if self._open(iid):
                self._cast_all(iid, channel, item["runoff"]["ballots"], None)
                self.call("POST", f"/api/admin/items/{iid}/close")
                _, result = self.call("POST", f"/api/admin/items/{iid}/tally")
        if result["status"] in ("decided", "void", "quorum_not_met"):
            self.call("POST", f"/api/admin/items/{iid}/record")

    def _open(self, iid: int) -> bool:
        status, data = self.call("POST", f"/api/admin/items/{iid}/open", expect=(200, 409))
        if status == 200:
            return True
        if data["errors"][0]["errorType"] != "QuorumNotMet":
            raise RuntimeError(f"opening item {iid} failed: {data}")
        self.call("POST", f"/api/admin/items/{iid}/quorum-failed")
        return False

    def _cast_all(self, iid: int, channel: str, ballots: list[dict], issued: int | None) -> None:
        expanded = [b for b in ballots for _ in range(b.get("repeat", 1))]
        genuine = [b for b in expanded if not (b.get("forged") or b.get("reuse") or b.get("spare"))]
        used: list[tuple[str, dict, str]] = []  # (ballot text, marks, credential)
        if channel == "terminal":
            voters = [m["id"] for m in self.roster if m["id"] in self.present]
            if len(genuine) > len(voters):
                raise InvalidInput(f"{len(genuine)} genuine ballots but only {len(voters)} members present",
                                   where="ballots")
            for mid, b in zip(voters, genuine):
                _, got = self.call("GET", "/api/terminal/ballot", credential=self.cred[mid])
                self.call("POST", "/api/terminal/cast", {"ballot": got["ballot"], "marks": b["marks"]},
                          credential=self.cred[mid])
                used.append((got["ballot"], b["marks"], self.cred[mid]))
            submit_cred, endpoint = (self.cred[voters[0]] if voters else self.station), "/api/terminal/cast"
        else:
            n_issued = len(self.present) if issued is None else issued
            n_spare = sum(1 for b in expanded if b.get("spare"))
            _, printed = self.call("POST", f"/api/admin/items/{iid}/paper-ballots",
                                   {"count": max(1, n_issued + n_spare)})
            texts = printed["ballots"]
            for t in texts[:n_issued]:
                self.call("POST", "/api/station/hand-out", {"ballot": t}, credential=self.station)
            if len(genuine) > n_issued:
                raise InvalidInput(f"{len(genuine)} genuine ballots but only {n_issued} issued", where="ballots")
            for t, b in zip(texts, genuine):
                self.call("POST", "/api/station/paper", {"ballot": t, "marks": b["marks"]}, credential=self.station)
                used.append((t, b["marks"], self.station))
            self.spares = texts[n_issued:]
            submit_cred, endpoint = self.station, "/api/station/paper"
        for b in expanded:
            if b.get("forged"):
                text = _forge(used[0][0] if used else None, iid)
                self._expect_refused(endpoint, text, b["marks"], submit_cred)
            elif b.get("reuse"):
                text = next((t for t, marks, _ in used if marks != b["marks"]), used[0][0] if used else None)
                self._expect_refused(endpoint, text, b["marks"], submit_cred)
            elif b.get("spare"):
                self._expect_refused(endpoint, self.spares.pop(), b["marks"], submit_cred)

    def _expect_refused(self, endpoint: str, text: str | None, marks: dict, credential: str) -> None:
        status, data = self.call("POST", endpoint, {"ballot": text or "BS1.x.y", "marks": marks},
                                 credential=credential, expect=None)
        if status < 400:
            raise RuntimeError(f"a submission meant to be refused was accepted: {data}")

    def write_outputs(self, results: dict) -> None:
        from ballot_service.bundle.export import export_bundle
        from ballot_service.models import Record

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
                try:
                    from ballot_service.render import record_pdf
                except ModuleNotFoundError:
                    record_pdf = None
                if record_pdf is not None:
                    (rec_dir / f"{stem}.pdf").write_bytes(record_pdf.render(content, rec.signature))
            export_bundle(db, self.app.config["SETTINGS"], self.out / "audit")
            db.close()


def _forge(genuine_text: str | None, iid: int) -> str:
    """A ballot whose signature this service never made: a genuine payload, signed by another key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if genuine_text is None:
        return "BS1.e30.AAAA"
    prefix, payload, _sig = genuine_text.split(".")
    other = Ed25519PrivateKey.generate().sign(b64url_decode(payload))
    return f"{prefix}.{payload}.{b64url_encode(other)}"


def rehearse(path: str | Path, out: str | Path, database_url: str | None = None) -> dict:
    scenario = load_scenario(path)
    r = Rehearsal(scenario, Path(out), database_url)
    results = r.run()
    r.write_outputs(results)
    return results
