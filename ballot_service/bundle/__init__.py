"""The audit bundle: a folder an auditor takes away and checks offline with
`ballot-service audit verify BUNDLE` (or by hand with openssl and sha256sum).

Layout (every JSON file is UTF-8, keys sorted; `.json` files indented by one space,
`.jsonl` files one canonical JSON object per line, see canonical.py)::

    manifest.json                 sha256 of every other file
    README.md                     how to verify (Chinese and English)
    events.jsonl                  every audit event in seq order: seq, at, kind, data, prev_hash, hash
    checkpoints.json              signed chain heads: seq, head_hash, reason, signature, key_fingerprint;
                                  reason vote_closed:<item>:<round> or session_closed:<session>
    counts.json                   per item and round: issued, returned, refused by reason, members,
                                  present, candidate keys, places, rule, item kind, ids
    ballots/<item>-r<n>.jsonl     accepted casts of a round, sorted by serial: serial, signature, marks
                                  (+ member_id, member_no for named votes only)
    records/<item>.json           signed record: canonical text as signed, signature, fingerprint
    keys/<name>.pub.pem           public keys; keys/fingerprints.json names their fingerprints

What a ballot signature covers: the canonical JSON of
`{"v": 1, "body", "session", "item", "round", "serial"}` (ballots.py). The bundle does not
repeat the token text: `body`, `session`, `item` and `round` are the ids that counts.json
gives for the round whose file holds the ballot, and `serial` is on the line. A ballot moved
to another round's file therefore fails its signature check (round/item binding).

`verify` raises BundleInvalid naming the first check that fails; it never returns False.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.crypto import keys as keys_mod
from ballot_service.domain import audit, tally
from ballot_service.errors import BallotError, InvalidInput
from ballot_service.formats import ballots as ballots_mod
from ballot_service.formats.canonical import canonical_json, sha256_hex
from ballot_service.models import (
    AuditEvent,
    Cast,
    Checkpoint,
    Item,
    Member,
    Record,
    Refusal,
    Sitting,
    TallySheet,
)

BUNDLE_FORMAT = "ballot-audit-bundle/1"
COUNTS_FORMAT = "ballot-audit-counts/1"
EVENT_FIELDS = ("at", "data", "hash", "kind", "prev_hash", "seq")
CHECKPOINT_FIELDS = {"seq", "head_hash", "reason", "signature", "key_fingerprint"}
ROUND_FIELDS = {"number", "round_id", "status", "candidates", "places", "members", "present", "quorum_met",
                "issued", "returned", "refused", "ballots_file", "sheet"}
ITEM_FIELDS = {"id", "key", "kind", "title", "secret", "channel", "places", "rule", "body", "session",
               "rounds", "record_file"}
RECORD_FIELDS = {"record_id", "signed", "signature", "key_fingerprint"}
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PARALLEL_BYTES = 2_000_000


class BundleInvalid(BallotError):
    """The bundle fails a check; the message names the check and the place, in plain words."""

    status = 422
    error_type = "BundleInvalid"


# --- encodings ---------------------------------------------------------------------------

def pretty_json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1) + "\n"


def json_line(obj) -> str:
    return canonical_json(obj).decode("utf-8") + "\n"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise ValueError("not canonical base64url")
    return data


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- export ------------------------------------------------------------------------------

def export(db: Session, settings, out_dir: Path) -> Path:
    """Write the audit bundle of everything in the database to `out_dir` and return it.

    Reads only. Written to a temporary folder first, then moved into place; an earlier bundle
    at `out_dir` is replaced, any other non-empty folder is refused."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
        raise InvalidInput(f"{out_dir} is not empty and holds no earlier bundle; choose an empty folder",
                           where=str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_bundle(db, settings, tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _item_stems(items: list[Item]) -> dict[int, str]:
    keys = Counter(i.key for i in items)
    stems = {}
    for i in items:
        stem = i.key if _SAFE_STEM.match(i.key) else f"item{i.id}"
        if keys[i.key] > 1 or not _SAFE_STEM.match(i.key):
            stem = f"s{i.sitting_id}-{stem}" if _SAFE_STEM.match(i.key) else stem
        stems[i.id] = stem
    return stems


def _write_bundle(db: Session, settings, out: Path) -> None:
    (out / "ballots").mkdir()
    (out / "records").mkdir()
    (out / "keys").mkdir()

    # Events, in seq order, streamed.
    with open(out / "events.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for ev in db.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().yield_per(5000):
            f.write(json_line({"seq": ev.seq, "at": ev.at.isoformat() if ev.at else None, "kind": ev.kind,
                               "data": ev.data, "prev_hash": ev.prev_hash, "hash": ev.hash}))

    cps = [{"seq": c.seq, "head_hash": c.head_hash, "reason": c.reason, "signature": c.signature,
            "key_fingerprint": c.key_fingerprint} for c in db.scalars(select(Checkpoint))]
    cps.sort(key=lambda c: (c["seq"], c["reason"]))
    (out / "checkpoints.json").write_text(pretty_json(cps), "utf-8")

    items = list(db.scalars(select(Item).order_by(Item.id)))
    stems = _item_stems(items)
    records = {r.item_id: r for r in db.scalars(select(Record))}
    member_no = {}
    body_ids = set()
    counts_items = []
    for item in items:
        body = item.sitting.body
        body_ids.add(body.id)
        rounds = []
        for rnd in item.rounds:
            refused = dict(db.execute(select(Refusal.reason, Refusal.count)
                                      .where(Refusal.round_id == rnd.id)).all())
            casts = list(db.execute(select(Cast.serial, Cast.signature, Cast.marks, Cast.member_id)
                                    .where(Cast.round_id == rnd.id)).all())
            sheet = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id))
            ballots_file = None
            if rnd.status != "pending" and item.channel != "tally_sheet":
                ballots_file = f"ballots/{stems[item.id]}-r{rnd.number}.jsonl"
                casts.sort(key=lambda c: c.serial)  # file order reveals nothing about cast order
                with open(out / ballots_file, "w", encoding="utf-8", newline="\n") as f:
                    for c in casts:
                        line = {"serial": c.serial, "signature": c.signature, "marks": c.marks}
                        if not item.secret:
                            if c.member_id is not None and c.member_id not in member_no:
                                member_no[c.member_id] = db.get(Member, c.member_id).member_no
                            line["member_id"] = c.member_id
                            line["member_no"] = member_no.get(c.member_id)
                        f.write(json_line(line))
            rounds.append({
                "number": rnd.number, "round_id": rnd.id, "status": rnd.status,
                "candidates": list(rnd.candidate_keys), "places": rnd.places, "members": rnd.members,
                "present": rnd.present, "quorum_met": rnd.quorum_met, "issued": rnd.issued,
                "returned": len(casts), "refused": refused, "ballots_file": ballots_file,
                "sheet": sheet.data if sheet is not None and sheet.confirmed_by is not None else None})
        record_file = None
        rec = records.get(item.id)
        if rec is not None:
            record_file = f"records/{stems[item.id]}.json"
            (out / record_file).write_text(pretty_json({
                "record_id": rec.id, "signed": rec.body_json, "signature": rec.signature,
                "key_fingerprint": rec.key_fingerprint}), "utf-8")
        counts_items.append({
            "id": item.id, "key": item.key, "kind": item.kind, "title": item.title, "secret": item.secret,
            "channel": item.channel, "places": item.places,
            "rule": {"base": item.base, "majority": item.majority},
            "body": {"id": body.id, "name": body.name, "kind": body.kind},
            "session": {"id": item.sitting.id, "name": item.sitting.name},
            "rounds": rounds, "record_file": record_file})
    (out / "counts.json").write_text(pretty_json({"format": COUNTS_FORMAT, "items": counts_items}), "utf-8")

    # Public keys of every body in the bundle: those with items, and those whose closed
    # sessions carry a signed session-close checkpoint.
    body_ids |= set(db.scalars(select(Sitting.body_id).where(Sitting.status == "closed")))
    wanted = {keys_mod.body_key_name(b) for b in body_ids}
    fps = {}
    keys_dir = Path(settings.keys_dir)
    for name in sorted(wanted):
        pub_path = keys_mod.public_path(keys_dir, name)
        if pub_path.exists():
            pub = keys_mod.load_public_key(pub_path)
        else:
            pub = keys_mod.load_key(keys_dir, name, settings.key_passphrase).public_key
        pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        (out / "keys" / f"{name}.pub.pem").write_bytes(pem)
        fps[name] = keys_mod.fingerprint(pub)
    (out / "keys" / "fingerprints.json").write_text(pretty_json(fps), "utf-8")

    (out / "README.md").write_text(README, "utf-8")
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            files[p.relative_to(out).as_posix()] = _sha256_file(p)
    (out / "manifest.json").write_text(pretty_json({"format": BUNDLE_FORMAT, "files": files}), "utf-8")


# --- verify ------------------------------------------------------------------------------

def _fail(message: str, where: str | None = None):
    raise BundleInvalid(message, where=where)


def _read_json(bundle: Path, rel: str):
    path = bundle / rel
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        _fail(f"{rel} is missing", rel)
    except UnicodeDecodeError:
        _fail(f"{rel} is not UTF-8 text", rel)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{rel} is not valid JSON (line {exc.lineno}): the file was damaged or edited", rel)
    if pretty_json(data) != text:
        _fail(f"{rel} is not in the form the service writes (keys sorted, one-space indent): "
              f"the file was edited", rel)
    return data


_ENCODE = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def _no_float(text):
    raise ValueError(f"number {text} is not a whole number")


_DECODE = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float).decode


def _loads_line(line: bytes):
    """One canonical JSON object, or ValueError. Floats are refused at parse time, so the
    faster encoder below gives exactly canonical_json's bytes."""
    obj = json.loads(line.decode("utf-8"), parse_float=_no_float, parse_constant=_no_float)
    if not isinstance(obj, dict) or _ENCODE(obj).encode("utf-8") != line:
        raise ValueError("not canonical")
    return obj


def _lines(bundle: Path, rel: str) -> list[bytes]:
    """The lines of a JSON-lines file, each without its newline; a missing file or a cut-off
    last line fails."""
    try:
        raw = (bundle / rel).read_bytes()
    except FileNotFoundError:
        _fail(f"{rel} is missing", rel)
    if raw and not raw.endswith(b"\n"):
        _fail(f"{rel}: the last line is cut off (no final newline)", rel)
    return raw.split(b"\n")[:-1] if raw else []


def _read_jsonl(bundle: Path, rel: str) -> list:
    out = []
    for n, line in enumerate(_lines(bundle, rel), 1):
        try:
            obj = _loads_line(line)
            ok = True
        except (UnicodeDecodeError, ValueError, TypeError):
            ok = False
        if not ok:
            _fail(f"{rel} line {n} is not a canonical JSON object: the line was damaged or edited",
                  f"{rel}:{n}")
        out.append(obj)
    return out


# A cast_accepted event exactly as the service writes it (no time; round, serial, digest).
# Such a line is canonical by construction, and its hashed text is a slice of it; any other
# line takes the general path in _read_events.
_CAST_EVENT = re.compile(
    r'(\{"at":null,"data":"\{\\"round_id\\":(0|[1-9][0-9]{0,17}),\\"serial\\":\\"([0-9a-f]{32})\\",'
    r'\\"submission\\":\\"([0-9a-f]{64})\\"\}"),"hash":"([0-9a-f]{64})","kind":"cast_accepted",'
    r'"prev_hash":"([0-9a-f]{64})","seq":([1-9][0-9]{0,17})\}')


def _event_text(seq: int, at_json: str, kind_json: str, data_json: str) -> str:
    """The text audit.event_hash hashes after prev_hash, from already-quoted parts:
    canonical_json({"seq", "at", "kind", "data"})."""
    return f'{{"at":{at_json},"data":{data_json},"kind":{kind_json},"seq":{seq}}}'


def _read_events(bundle: Path) -> tuple[list[str], list[str], list[dict]]:
    """Check events.jsonl line by line: canonical form, fields, seq 1, 2, 3 …, the link to the
    event before, the hash. Returns the hashes, kinds and parsed data (a non-object → {})."""
    rel = "events.jsonl"
    lines = _lines(bundle, rel)
    hashes: list[str] = []
    kinds: list[str] = []
    datas: list[dict] = []
    prev = audit.GENESIS
    sha256, fast, q = hashlib.sha256, _CAST_EVENT.fullmatch, _STR
    for n, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        m = fast(text) if text is not None else None
        if m is not None and m.group(7) == str(n) and m.group(6) == prev:
            head, round_id, serial, digest, h = m.group(1, 2, 3, 4, 5)
            if sha256((prev + head + ',"kind":"cast_accepted","seq":' + str(n) + "}").encode("utf-8")
                      ).hexdigest() != h:
                _fail(f"event {n}'s hash does not match its contents: the event was changed", f"{rel}:{n}")
            hashes.append(h)
            kinds.append("cast_accepted")
            datas.append({"round_id": int(round_id), "serial": serial, "submission": digest})
            prev = h
            continue
        where = f"{rel}:{n}"
        try:
            ev = _DECODE(text) if text is not None else None
        except ValueError:
            ev = None
        if not isinstance(ev, dict):
            _fail(f"{rel} line {n} is not a canonical JSON object: the line was damaged or edited", where)
        if len(ev) != len(EVENT_FIELDS) or ev.keys() != set(EVENT_FIELDS):
            _fail(f"event on line {n} does not have exactly the fields {', '.join(EVENT_FIELDS)}", where)
        at, data, h, kind, ph, seq = (ev[f] for f in EVENT_FIELDS)
        if not isinstance(data, str) or not isinstance(kind, str) or not isinstance(h, str) \
                or not isinstance(ph, str) or not (at is None or isinstance(at, str)):
            _fail(f"event {n} has a field of the wrong type", where)
        at_json, data_json, kind_json = "null" if at is None else q(at), q(data), q(kind)
        if f'{{"at":{at_json},"data":{data_json},"hash":{q(h)},"kind":{kind_json},"prev_hash":{q(ph)},' \
           f'"seq":{_ENCODE(seq)}}}' != text:
            _fail(f"{rel} line {n} is not a canonical JSON object: the line was damaged or edited", where)
        if not _is_int(seq) or seq != n:
            _fail(f"event on line {n} has seq {seq!r}; the chain must run 1, 2, 3, … without gaps: "
                  f"an event was removed, inserted or moved", where)
        if ph != prev:
            _fail(f"event {n} does not link to the event before it (prev_hash differs): "
                  f"an event was removed, inserted or moved", where)
        if sha256((prev + _event_text(n, at_json, kind_json, data_json)).encode("utf-8")).hexdigest() != h:
            _fail(f"event {n}'s hash does not match its contents: the event was changed", where)
        try:
            d = json.loads(data)
        except json.JSONDecodeError:
            _fail(f"event {n}'s data is not JSON", where)
        hashes.append(h)
        kinds.append(kind)
        datas.append(d if isinstance(d, dict) else {})
        prev = h
    return hashes, kinds, datas


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_key_arg(key) -> set[str]:
    """--key: a public key PEM path (or PEM text), or a fingerprint; several allowed."""
    if key is None:
        return set()
    items = [key] if isinstance(key, (str, Path)) else list(key)
    out = set()
    for k in items:
        s = str(k)
        if "-----BEGIN" in s or Path(s).is_file():
            out.add(keys_mod.fingerprint(keys_mod.load_public_key(s if "-----BEGIN" in s else Path(s))))
            continue
        hexes = re.sub(r"[\s:]", "", s).lower()
        if not re.fullmatch(r"[0-9a-f]{16}", hexes):
            raise BundleInvalid(f"--key {s!r} is neither a public key file nor a 16-hex-digit fingerprint",
                                where="--key")
        out.add(" ".join(hexes[i:i + 4] for i in range(0, 16, 4)))
    return out


# A 64-byte signature in canonical unpadded base64url: 85 free characters, then one whose low
# four bits are zero (the last 2 bits of the 512 are the only ones it carries).
_SIG_RE = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
_SERIAL_FULL = re.compile(r"[0-9a-f]{32}")
_STR = json.encoder.encode_basestring  # the encoder's own string quoting (ensure_ascii=False)
# A secret ballot line as the service writes it. A line that does not match takes the general path.
_SECRET_LINE = re.compile(r'\{"marks":(\{.*\}),"serial":"([0-9a-f]{32})","signature":"([A-Za-z0-9_-]{85}[AQgw])"\}')


def _check_ballots_file(bundle: str, rel: str, ids: tuple, raw_key: bytes, secret: bool):
    """Everything about one ballots file that needs no other file: form, order, signatures,
    submission digests. Runs in a worker process for large bundles. Returns
    ("ok", [(serial, marks, digest, member_id), …]) or ("error", message, where).

    One pass per line, and no general re-encoding: once the fields are known to be exactly
    right, the canonical line, the signed payload and the submission text are assembled from
    pieces (the serial is 32 hex digits and the signature base64url, so neither needs quoting),
    and compared byte for byte with the line. The result is what canonical_json gives."""
    body_id, session_id, item_id, round_no = ids
    try:
        raw = (Path(bundle) / rel).read_bytes()
    except FileNotFoundError:
        return ("error", f"{rel} is missing", rel)
    if raw and not raw.endswith(b"\n"):
        return ("error", f"{rel}: the last line is cut off (no final newline)", rel)
    lines = raw.split(b"\n")[:-1] if raw else ()
    fields = {"serial", "signature", "marks"} | (set() if secret else {"member_id", "member_no"})
    verify_sig = Ed25519PublicKey.from_public_bytes(raw_key).verify
    if all(_is_int(x) for x in ids):
        pay_pre = f'{{"body":{body_id},"item":{item_id},"round":{round_no},"serial":"'
        pay_post = f'","session":{session_id},"v":{ballots_mod.FORMAT_VERSION}}}'
    else:  # counts.json is damaged; the later checks will say how. Stay exact meanwhile.
        pay_pre = pay_post = None
    token_pre = ballots_mod.TEXT_PREFIX + "."
    sha256, b64enc, b64dec = hashlib.sha256, base64.urlsafe_b64encode, base64.urlsafe_b64decode
    encode, sig_ok, serial_ok = _ENCODE, _SIG_RE.fullmatch, _SERIAL_FULL.fullmatch
    out = []
    append = out.append
    prev_serial = ""
    marks_seen: dict[str, dict] = {}  # the same marks text parsed once; equal ballots share one dict
    fast = _SECRET_LINE.fullmatch if secret else None
    for n, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        m = fast(text) if fast is not None and text is not None else None
        if m is not None:
            # The line is {"marks":…,"serial":"<hex>","signature":"<b64url>"} exactly, so it is the
            # canonical line as soon as the marks text is canonical JSON of an object.
            marks_json, serial, sig_text = m.groups()
            marks = marks_seen.get(marks_json)
            if marks is None:
                try:
                    marks = _DECODE(marks_json)
                except ValueError:
                    marks = None
                if isinstance(marks, dict) and encode(marks) == marks_json:
                    marks_seen[marks_json] = marks
                else:
                    m = None
        if m is None:  # the general path: parse, and say exactly what is wrong if anything is
            try:
                ln = _DECODE(text) if text is not None else None
            except ValueError:
                ln = None
            if not isinstance(ln, dict):
                return ("error", f"{rel} line {n} is not a canonical JSON object: the line was damaged or "
                                 f"edited", f"{rel}:{n}")
            if ln.keys() != fields:
                return ("error", f"ballot on line {n} of {rel} does not have exactly the fields "
                                 f"{', '.join(sorted(fields))}", f"{rel}:{n}")
            serial, sig_text, marks = ln["serial"], ln["signature"], ln["marks"]
            if not isinstance(serial, str) or not serial_ok(serial):
                return ("error", f"ballot on line {n} of {rel} has a malformed serial", f"{rel}:{n}")
            if not isinstance(sig_text, str) or not sig_ok(sig_text):
                return ("error", f"ballot {serial} in {rel} has a malformed signature", f"{rel}:{n}")
            marks_json = encode(marks)
            if secret:
                canon = f'{{"marks":{marks_json},"serial":"{serial}","signature":"{sig_text}"}}'
            else:
                canon = (f'{{"marks":{marks_json},"member_id":{encode(ln["member_id"])},'
                         f'"member_no":{encode(ln["member_no"])},"serial":"{serial}",'
                         f'"signature":"{sig_text}"}}')
            if canon != text:
                return ("error", f"{rel} line {n} is not a canonical JSON object: the line was damaged or "
                                 f"edited", f"{rel}:{n}")
            member_id = ln.get("member_id")
        else:
            member_id = None
        if serial <= prev_serial:
            return ("error", f"{rel} is not sorted by serial at line {n}: lines were moved or repeated",
                    f"{rel}:{n}")
        prev_serial = serial
        if pay_pre is not None:
            payload = (pay_pre + serial + pay_post).encode("ascii")
        else:
            payload = encode({"v": ballots_mod.FORMAT_VERSION, "body": body_id, "session": session_id,
                              "item": item_id, "round": round_no, "serial": serial}).encode("utf-8")
        try:
            verify_sig(b64dec(sig_text + "=="), payload)
        except InvalidSignature:
            return ("error", f"ballot {serial} in {rel}: signature does not verify for body {body_id}, "
                             f"session {session_id}, item {item_id}, round {round_no} "
                             f"(forged, or moved from another round or item)", f"{rel}:{n}")
        token_text = token_pre + b64enc(payload).rstrip(b"=").decode("ascii") + "." + sig_text
        digest = sha256(f'{{"ballot":"{token_text}","marks":{marks_json}}}'.encode("utf-8")).hexdigest()
        append((serial, marks, digest, member_id))
    return ("ok", out)


class _Inline:
    """Runs a job when its result is asked for (small bundles, or no fork)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def result(self):
        return self.fn(*self.args)


def _start_ballot_jobs(b: Path, counts, by_name: dict) -> tuple[dict, object]:
    """Start checking ballots files while the event chain is checked. Any error is only
    reported when the ballot step is reached, so the first failing check stays first."""
    jobs = []
    try:
        for ci in counts["items"]:
            for r in ci["rounds"]:
                rel = r.get("ballots_file")
                pub = by_name.get(keys_mod.body_key_name(ci["body"]["id"])) if _is_int(ci["body"]["id"]) else None
                if isinstance(rel, str) and pub is not None and (b / rel).is_file():
                    ids = (ci["body"]["id"], ci["session"]["id"], ci["id"], r["number"])
                    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                    jobs.append((rel, ids, raw, bool(ci["secret"])))
    except (KeyError, TypeError, AttributeError):
        return {}, None
    size = sum((b / j[0]).stat().st_size for j in jobs)
    pool = None
    if size > PARALLEL_BYTES and (os.cpu_count() or 1) > 1:
        import concurrent.futures
        import multiprocessing

        try:
            pool = concurrent.futures.ProcessPoolExecutor(
                min(os.cpu_count() or 1, 8), mp_context=multiprocessing.get_context("fork"))
        except ValueError:
            pool = None
    futures = {}
    for rel, ids, raw, secret in jobs:
        key = (rel, ids, secret)
        futures[key] = pool.submit(_check_ballots_file, str(b), rel, ids, raw, secret) if pool \
            else _Inline(_check_ballots_file, str(b), rel, ids, raw, secret)
    return futures, pool


def verify(bundle_dir: Path, key=None) -> dict:
    """Check a bundle offline. Returns a summary; raises BundleInvalid at the first failure."""
    state = {"pool": None}
    try:
        return _verify(Path(bundle_dir), key, state)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        # A value of an unexpected shape that no named check caught: still a plain failure.
        raise BundleInvalid(f"the bundle holds data of an unexpected shape ({exc.__class__.__name__}: {exc}): "
                            f"it was damaged or edited") from exc
    finally:
        if state["pool"] is not None:
            state["pool"].shutdown(wait=True, cancel_futures=True)


def _verify(bundle_dir: Path, key, state: dict) -> dict:
    """Check a bundle offline. Returns a summary; raises BundleInvalid at the first failure."""
    b = Path(bundle_dir)
    if not b.is_dir():
        _fail(f"{b} is not a folder", str(b))
    pinned = _parse_key_arg(key)

    # 1. manifest --------------------------------------------------------------------------
    manifest = _read_json(b, "manifest.json")
    if not isinstance(manifest, dict) or set(manifest) != {"format", "files"} \
            or manifest["format"] != BUNDLE_FORMAT or not isinstance(manifest["files"], dict):
        _fail(f"manifest.json is not a {BUNDLE_FORMAT} manifest", "manifest.json")
    present = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    present = [p for p in present if p != "manifest.json"]
    for rel in present:
        if rel not in manifest["files"]:
            _fail(f"{rel} is in the folder but not in manifest.json: a file was added", rel)
    for rel, digest in manifest["files"].items():
        if not (b / rel).is_file():
            _fail(f"{rel} is listed in manifest.json but missing from the folder", rel)
        if _sha256_file(b / rel) != digest:
            _fail(f"{rel} does not match its sha256 in manifest.json: the file was changed", rel)

    # 2. keys ------------------------------------------------------------------------------
    fps = _read_json(b, "keys/fingerprints.json")
    if not isinstance(fps, dict) or not all(isinstance(v, str) for v in fps.values()):
        _fail("keys/fingerprints.json must map key names to fingerprints", "keys/fingerprints.json")
    if pinned and not fps:
        _fail("the bundle holds no key, so nothing in it is signed by the key you gave", "--key")
    pem_files = {p.name[: -len(keys_mod.PUBLIC_SUFFIX)] for p in (b / "keys").glob("*" + keys_mod.PUBLIC_SUFFIX)}
    if pem_files != set(fps):
        _fail("keys/ holds other public keys than keys/fingerprints.json names", "keys/")
    by_name: dict[str, Ed25519PublicKey] = {}
    by_fp: dict[str, Ed25519PublicKey] = {}
    for name, fp in fps.items():
        rel = f"keys/{name}{keys_mod.PUBLIC_SUFFIX}"
        data = (b / rel).read_bytes()
        try:
            pub = keys_mod.load_public_key(data)
        except BallotError:
            _fail(f"{rel} is not a valid Ed25519 public key", rel)
        if pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) != data:
            _fail(f"{rel} is not in the form the service writes: the file was edited", rel)
        if keys_mod.fingerprint(pub) != fp:
            _fail(f"{rel} has fingerprint {keys_mod.fingerprint(pub)}, not {fp} as keys/fingerprints.json says",
                  rel)
        by_name[name], by_fp[fp] = pub, pub
    if pinned:
        for name, fp in fps.items():
            if fp not in pinned:
                _fail(f"the bundle's key {name} has fingerprint {fp}, which is not the key you gave "
                      f"({', '.join(sorted(pinned))}): the bundle was not signed with that key", "--key")

    # Ballot files are checked in the background while the chain is (large bundles).
    try:
        early_counts = json.loads((b / "counts.json").read_text("utf-8"))
    except (OSError, ValueError):
        early_counts = None
    futures, state["pool"] = _start_ballot_jobs(b, early_counts, by_name) if early_counts else ({}, None)

    # 3. event chain -----------------------------------------------------------------------
    hashes, kinds, datas = _read_events(b)
    head_seq = len(hashes)
    head_hash = hashes[-1] if hashes else audit.GENESIS

    def hash_at(seq: int) -> str | None:
        if seq == 0:
            return audit.GENESIS
        return hashes[seq - 1] if 1 <= seq <= len(hashes) else None

    # 4. checkpoints -----------------------------------------------------------------------
    cps = _read_json(b, "checkpoints.json")
    if not isinstance(cps, list):
        _fail("checkpoints.json must be a list", "checkpoints.json")
    last = None
    cp_by_reason: dict[str, dict] = {}
    for n, cp in enumerate(cps, 1):
        where = f"checkpoints.json[{n}]"
        if not isinstance(cp, dict) or set(cp) != CHECKPOINT_FIELDS or not _is_int(cp["seq"]) \
                or not isinstance(cp["reason"], str):
            _fail(f"checkpoint {n} does not have exactly the fields {', '.join(sorted(CHECKPOINT_FIELDS))}",
                  where)
        order = (cp["seq"], cp["reason"])
        if last is not None and order <= last:
            _fail(f"checkpoint {n} is out of order or repeated: checkpoints run by seq", where)
        last = order
        pub = by_fp.get(cp["key_fingerprint"])
        if pub is None:
            _fail(f"checkpoint {n} names key {cp['key_fingerprint']!r}, which is not in keys/", where)
        try:
            pub.verify(unb64url(cp["signature"]), audit.checkpoint_message(cp["seq"], cp["head_hash"],
                                                                            cp["reason"]))
        except (InvalidSignature, ValueError, TypeError, binascii.Error):
            _fail(f"checkpoint {n}'s signature does not verify: the checkpoint was changed or forged", where)
        if hash_at(cp["seq"]) != cp["head_hash"]:
            _fail(f"checkpoint {n} signs chain head {cp['head_hash'][:12]}… at seq {cp['seq']}, "
                  f"but events.jsonl has another hash there: the event log was cut or rewritten", where)
        cp_by_reason[cp["reason"]] = cp

    # Index the events the later checks rely on.
    item_created: dict[int, dict] = {}
    sessions: dict[int, dict] = {}
    opened: dict[tuple, dict] = {}
    closed: dict[tuple, tuple[int, dict]] = {}
    tallied: dict[tuple, tuple[int, dict]] = {}
    sheets: dict[tuple, dict] = {}
    casts_by_round: dict[int, dict[str, dict]] = defaultdict(dict)
    refusals: dict[int, list[tuple[int, str]]] = defaultdict(list)
    record_events: dict[str, tuple[int, dict]] = {}
    session_closed: dict[int, int] = {}  # session id -> seq of its session_closed event

    def body_key_of_session(sid) -> str | None:
        body_id = (sessions.get(sid) or {}).get("body_id")
        return fps.get(keys_mod.body_key_name(body_id)) if _is_int(body_id) else None

    def require_checkpoint(seq: int, reason: str, what: str, sid) -> None:
        cp = cp_by_reason.get(reason)
        if cp is None or cp["seq"] != seq:
            _fail(f"the {what} at event {seq} has no signed checkpoint ({reason}) in checkpoints.json: "
                  f"a checkpoint was removed", "checkpoints.json")
        if cp["key_fingerprint"] != body_key_of_session(sid):
            _fail(f"the checkpoint of the {what} at event {seq} is not signed by the key of the session's body",
                  "checkpoints.json")

    def still_open(seq: int, sid, what: str) -> None:
        if sid in session_closed:
            _fail(f"event {seq} ({what}) changes session {sid} after it was closed at event "
                  f"{session_closed[sid]}: a closed session accepts no check-in, item or vote",
                  f"events.jsonl:{seq}")

    for seq, (kind, d) in enumerate(zip(kinds, datas), 1):
        if kind == "cast_accepted":
            if d.get("serial") in casts_by_round[d.get("round_id")]:
                _fail(f"event {seq} accepts serial {d.get('serial')} a second time", f"events.jsonl:{seq}")
            casts_by_round[d.get("round_id")][d.get("serial")] = d
        elif kind == "session_created":
            sessions[d.get("session_id")] = d
        elif kind == "item_created":
            still_open(seq, d.get("session_id"), "a new item")
            item_created[d.get("item_id")] = d
        elif kind.startswith("attendance_"):
            still_open(seq, d.get("session_id"), "a check-in or leave")
        elif kind == "screen_set":
            still_open(seq, d.get("session_id"), "a choice of what the presiding screen shows")
        elif kind in ("vote_opened", "vote_open_refused"):
            still_open(seq, (item_created.get(d.get("item_id")) or {}).get("session_id"), "a vote opening")
            if kind == "vote_opened":
                opened[(d.get("item_id"), d.get("round"))] = d
        elif kind == "vote_closed":
            closed[(d.get("item_id"), d.get("round"))] = (seq, d)
            require_checkpoint(seq, f"vote_closed:{d.get('item_id')}:{d.get('round')}", "vote close",
                               (item_created.get(d.get("item_id")) or {}).get("session_id"))
        elif kind == "session_closed":
            sid = d.get("session_id")
            if sid not in sessions:
                _fail(f"event {seq} closes session {sid!r}, which the event log never created", f"events.jsonl:{seq}")
            if sid in session_closed:
                _fail(f"event {seq} closes session {sid} a second time (first at event {session_closed[sid]})",
                      f"events.jsonl:{seq}")
            require_checkpoint(seq, f"session_closed:{sid}", "session close", sid)
            session_closed[sid] = seq
        elif kind == "tallied":
            tallied[(d.get("item_id"), d.get("round"))] = (seq, d)
        elif kind == "tally_sheet_entered":
            sheets[(d.get("item_id"), d.get("round"))] = d
        elif kind == "cast_refused" and d.get("round_id") is not None:
            refusals[d["round_id"]].append((seq, d.get("reason")))
        elif kind == "record_issued":
            record_events[d.get("record_id")] = (seq, d)

    # 5. counts ----------------------------------------------------------------------------
    counts = _read_json(b, "counts.json")
    if not isinstance(counts, dict) or set(counts) != {"format", "items"} or counts["format"] != COUNTS_FORMAT \
            or not isinstance(counts["items"], list):
        _fail(f"counts.json is not a {COUNTS_FORMAT} file", "counts.json")
    citems = counts["items"]
    ids = [i.get("id") if isinstance(i, dict) else None for i in citems]
    if ids != sorted(set(x for x in ids if _is_int(x))) or len(ids) != len(set(ids)):
        _fail("counts.json: items must be listed once each, by id: an item was moved, repeated or damaged",
              "counts.json")
    if set(ids) != set(item_created):
        missing = sorted(set(item_created) - set(ids))
        _fail(f"counts.json does not list the same items as the event log"
              f"{' (missing item ' + str(missing[0]) + ')' if missing else ' (an item not in the log)'}",
              "counts.json")
    referenced_ballots: set[str] = set()
    referenced_records: set[str] = set()
    round_of_id: dict[int, tuple[dict, dict]] = {}
    for ci in citems:
        where = f"counts.json item {ci.get('key')!r}"
        if set(ci) != ITEM_FIELDS or not isinstance(ci["rounds"], list) or not isinstance(ci["rule"], dict):
            _fail(f"{where} does not have exactly the fields {', '.join(sorted(ITEM_FIELDS))}", "counts.json")
        ev = item_created[ci["id"]]
        for f_item, f_ev in (("key", "key"), ("kind", "kind"), ("title", "title"), ("secret", "secret"),
                             ("channel", "channel"), ("places", "places"), ("rule", "rule")):
            if ci[f_item] != ev.get(f_ev):
                _fail(f"{where}: {f_item} is {ci[f_item]!r} but the event log created the item with "
                      f"{ev.get(f_ev)!r}", "counts.json")
        if not isinstance(ci["session"], dict) or not isinstance(ci["body"], dict) \
                or ci["session"].get("id") != ev.get("session_id") \
                or sessions.get(ci["session"].get("id"), {}).get("body_id") != ci["body"].get("id"):
            _fail(f"{where}: session or body differs from the event log", "counts.json")
        try:
            rule = rules.Rule(ci["rule"].get("base"), ci["rule"].get("majority"))
        except rules.RuleError as exc:
            _fail(f"{where}: {exc}", "counts.json")
        ci["_rule"] = rule
        numbers = [r.get("number") if isinstance(r, dict) else None for r in ci["rounds"]]
        if numbers != list(range(1, len(numbers) + 1)):
            _fail(f"{where}: rounds must run 1, 2, … in order: a round was moved, removed or added",
                  "counts.json")
        for r in ci["rounds"]:
            rw = f"{where} round {r['number']}"
            if set(r) != ROUND_FIELDS or not isinstance(r["refused"], dict):
                _fail(f"{rw} does not have exactly the fields {', '.join(sorted(ROUND_FIELDS))}", "counts.json")
            if not _is_int(r["round_id"]) or r["round_id"] in round_of_id:
                _fail(f"{rw}: round_id is missing or repeated", "counts.json")
            round_of_id[r["round_id"]] = (ci, r)
            k = (ci["id"], r["number"])
            op = opened.get(k)
            if op is not None:
                for f_r, f_ev in (("members", "members"), ("present", "present"), ("candidates", "candidates"),
                                  ("places", "places")):
                    if r[f_r] != op.get(f_ev):
                        _fail(f"{rw}: {f_r} is {r[f_r]!r} but the vote was opened with {op.get(f_ev)!r}",
                              "counts.json")
                if r["quorum_met"] is not True:
                    _fail(f"{rw}: the vote was opened, so quorum was met", "counts.json")
            elif r["status"] not in ("pending",) and r["quorum_met"] is not False:
                _fail(f"{rw}: no vote_opened event, yet the round is {r['status']} with quorum met",
                      "counts.json")
            if r["status"] == "pending" and (op is not None or r["ballots_file"] is not None):
                _fail(f"{rw}: a pending round has no vote", "counts.json")
            cl = closed.get(k)
            if cl is not None:
                cd = cl[1]
                if ci["channel"] != "tally_sheet" and (r["issued"] != cd.get("issued")
                                                       or r["returned"] != cd.get("returned")):
                    _fail(f"{rw}: issued/returned {r['issued']}/{r['returned']} differ from the figures "
                          f"frozen when the vote closed ({cd.get('issued')}/{cd.get('returned')})", "counts.json")
                if set(r["refused"]) != set(cd.get("refused") or {}):
                    _fail(f"{rw}: the refusal reasons differ from those recorded at the close", "counts.json")
            got = Counter(reason for _, reason in refusals.get(r["round_id"], []))
            for reason in set(got) | set(r["refused"]):
                if r["refused"].get(reason, 0) != got.get(reason, 0):
                    _fail(f"{rw}: refused ({reason}) is {r['refused'].get(reason, 0)} but the event log "
                          f"holds {got.get(reason, 0)} such refusals", "counts.json")
            if ci["channel"] == "tally_sheet":
                if r["ballots_file"] is not None:
                    _fail(f"{rw}: a tally-sheet round has no ballots file", "counts.json")
                if r["sheet"] is not None and r["sheet"] != sheets.get(k, {}).get("sheet"):
                    _fail(f"{rw}: the tally sheet differs from the one entered in the event log", "counts.json")
            elif r["sheet"] is not None:
                _fail(f"{rw}: a round voted by {ci['channel']} has no tally sheet", "counts.json")
            elif r["status"] != "pending":
                expect = r["ballots_file"]
                if not isinstance(expect, str) or not expect.startswith("ballots/") or expect in referenced_ballots:
                    _fail(f"{rw}: ballots_file is missing or shared with another round", "counts.json")
                referenced_ballots.add(expect)
        if ci["record_file"] is not None:
            if not isinstance(ci["record_file"], str) or not ci["record_file"].startswith("records/") \
                    or ci["record_file"] in referenced_records:
                _fail(f"{where}: record_file is not a file under records/", "counts.json")
            referenced_records.add(ci["record_file"])
    for rid in casts_by_round:
        if rid not in round_of_id:
            _fail(f"the event log accepts ballots for round id {rid}, which counts.json does not list",
                  "counts.json")
    on_disk = {p.relative_to(b).as_posix() for p in (b / "ballots").glob("*")} if (b / "ballots").is_dir() else set()
    for extra in sorted(on_disk - referenced_ballots):
        _fail(f"{extra} belongs to no round in counts.json", extra)
    on_disk = {p.relative_to(b).as_posix() for p in (b / "records").glob("*")} if (b / "records").is_dir() else set()
    for extra in sorted(on_disk - referenced_records):
        _fail(f"{extra} belongs to no item in counts.json", extra)

    # 6-8. ballots: signature and binding, serial uniqueness, cast events one-to-one -----------
    seen_serials: dict[str, str] = {}
    marks_by_round: dict[int, list[dict]] = {}
    total_ballots = 0
    for ci in citems:
        for r in ci["rounds"]:
            rel = r["ballots_file"]
            if rel is None:
                marks_by_round[r["round_id"]] = []
                continue
            body_id, session_id = ci["body"].get("id"), ci["session"].get("id")
            if not _is_int(body_id) or by_name.get(keys_mod.body_key_name(body_id)) is None:
                _fail(f"{rel}: no public key for body {body_id} in keys/", rel)
            job = futures.get((rel, (body_id, session_id, ci["id"], r["number"]), bool(ci["secret"])))
            if job is None:  # counts.json changed under us: check now
                pub = by_name[keys_mod.body_key_name(body_id)]
                job = _Inline(_check_ballots_file, str(b), rel, (body_id, session_id, ci["id"], r["number"]),
                              pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
                              bool(ci["secret"]))
            res = job.result()
            if res[0] == "error":
                _fail(res[1], res[2])
            lines = res[1]
            events_here = casts_by_round.get(r["round_id"], {})
            cand_set = set(r["candidates"] or [])
            marks_ok: set[int] = set()  # ids of the marks dicts of `lines` already checked
            for n, (serial, marks, digest, member_id) in enumerate(lines, 1):
                where = f"{rel}:{n}"
                if serial in seen_serials:
                    _fail(f"serial {serial} appears twice in the bundle ({seen_serials[serial]} and {where}): "
                          f"a ballot was counted twice", where)
                seen_serials[serial] = where
                ev = events_here.get(serial)
                if ev is None:
                    _fail(f"ballot {serial} in {rel} has no cast_accepted event in the log: "
                          f"a ballot was added", where)
                if digest != ev.get("submission"):
                    _fail(f"ballot {serial} in {rel} differs from what was accepted (the submission digest "
                          f"in the event log does not match): its marks were changed", where)
                if not ci["secret"] and member_id != ev.get("member_id"):
                    _fail(f"named ballot {serial} in {rel}: member differs from the event log", where)
                if ci["secret"] and "member_id" in ev:
                    _fail(f"event for secret ballot {serial} names a member", where)
                if id(marks) not in marks_ok:  # equal marks in one file arrive as one shared dict
                    if not isinstance(marks, dict) or marks.keys() != cand_set \
                            or any(m not in rules.MARKS for m in marks.values()):
                        _fail(f"ballot {serial} in {rel} does not mark exactly this round's candidates", where)
                    marks_ok.add(id(marks))
            if len(lines) != len(events_here):
                missing = sorted(set(events_here) - {ln[0] for ln in lines})
                _fail(f"{rel} lacks ballot {missing[0] if missing else '?'} that the event log accepted: "
                      f"a ballot was removed", rel)
            if r["returned"] != len(lines):
                _fail(f"counts.json says {r['returned']} returned for {ci['key']} round {r['number']}, "
                      f"but {rel} holds {len(lines)} ballots", "counts.json")
            marks_by_round[r["round_id"]] = [ln[1] for ln in lines]
            total_ballots += len(lines)

    # 9. records: signatures and audit heads -------------------------------------------------
    signed_records: dict[int, dict] = {}
    for ci in citems:
        rel = ci["record_file"]
        if rel is None:
            continue
        rec = _read_json(b, rel)
        if not isinstance(rec, dict) or set(rec) != RECORD_FIELDS or not isinstance(rec["signed"], str):
            _fail(f"{rel} does not have exactly the fields {', '.join(sorted(RECORD_FIELDS))}", rel)
        body_name = keys_mod.body_key_name(ci["body"]["id"])
        pub = by_name.get(body_name)
        if pub is None or fps[body_name] != rec["key_fingerprint"]:
            _fail(f"{rel} is signed by key {rec['key_fingerprint']!r}, not by the body's key in keys/", rel)
        signed = rec["signed"].encode("utf-8")
        try:
            pub.verify(unb64url(rec["signature"]), signed)
        except (InvalidSignature, ValueError, TypeError, binascii.Error):
            _fail(f"{rel}: the record's signature does not verify: the record was changed or forged", rel)
        content = json.loads(signed)
        if content.get("key_fingerprint") != rec["key_fingerprint"]:
            _fail(f"{rel}: the signed record names another key fingerprint", rel)
        a = content.get("audit") or {}
        if not _is_int(a.get("seq")) or hash_at(a["seq"]) != a.get("head"):
            _fail(f"{rel}: the record's audit head (seq {a.get('seq')}) is not in events.jsonl at that seq: "
                  f"the event log was cut or rewritten", rel)
        ev = record_events.get(rec["record_id"])
        if ev is None or ev[1].get("signature") != rec["signature"] or ev[1].get("item_id") != ci["id"] \
                or ev[1].get("record_sha256") != sha256_hex(signed):
            _fail(f"{rel}: no matching record_issued event in the log", rel)
        it = content.get("item") or {}
        if (it.get("id"), it.get("key"), it.get("kind")) != (ci["id"], ci["key"], ci["kind"]) \
                or (content.get("body") or {}).get("id") != ci["body"]["id"] \
                or (content.get("session") or {}).get("id") != ci["session"]["id"]:
            _fail(f"{rel} is the record of another item, session or body", rel)
        signed_records[ci["id"]] = content
    for rid, (seq, d) in record_events.items():
        if d.get("item_id") not in signed_records:
            _fail(f"the event log issued record {rid} (event {seq}) but the bundle does not hold it: "
                  f"a record was removed", "records/")

    # 10. returned <= issued, then recount every round ---------------------------------------
    rounds_checked = 0
    for ci in citems:
        content = signed_records.get(ci["id"])
        rec_rounds = {}
        if content is not None:
            rec_rounds = {r.get("number"): r.get("result") for r in content.get("rounds") or []}
        results = []
        for r in ci["rounds"]:
            k = (ci["id"], r["number"])
            tl = tallied.get(k)
            if r["status"] != "tallied":
                if tl is not None or r["number"] in rec_rounds:
                    _fail(f"{ci['key']} round {r['number']} is {r['status']} in counts.json but was tallied",
                          "counts.json")
                continue
            if tl is None:
                _fail(f"{ci['key']} round {r['number']} is marked tallied but the event log has no tally",
                      "counts.json")
            tally_seq, td = tl
            refused_then = sum(1 for seq, _ in refusals.get(r["round_id"], []) if seq < tally_seq)
            common = dict(item_kind=ci["kind"], candidate_keys=list(r["candidates"]), places=r["places"],
                          rule=ci["_rule"], members=r["members"], present=r["present"],
                          quorum_met=bool(r["quorum_met"]), refused=refused_then)
            try:
                if ci["channel"] == "tally_sheet":
                    if r["sheet"] is None:
                        _fail(f"{ci['key']} round {r['number']}: the tally sheet is missing", "counts.json")
                    result = tally.round_result(issued=r["sheet"]["issued"], sheet=r["sheet"], **common)
                else:
                    if _is_int(r["issued"]) and r["returned"] > r["issued"] \
                            and (rec_rounds.get(r["number"]) or {}).get("status") != "void":
                        _fail(f"{ci['key']} round {r['number']}: {r['returned']} ballots returned but only "
                              f"{r['issued']} issued, and the record does not declare the vote void",
                              "counts.json")
                    result = tally.round_result(issued=r["issued"] or 0, ballots=marks_by_round[r["round_id"]],
                                                **common)
            except (rules.RuleError, KeyError, TypeError, ValueError) as exc:
                _fail(f"{ci['key']} round {r['number']}: the counts cannot be tallied ({exc})", "counts.json")
            if result != td.get("result"):
                _fail(f"{ci['key']} round {r['number']}: recounting the ballots gives another result than the "
                      f"one tallied in the event log", "counts.json")
            if content is not None:
                if r["number"] not in rec_rounds:
                    _fail(f"{ci['record_file']} lacks round {r['number']}", ci["record_file"])
                if rec_rounds[r["number"]] != result:
                    _fail(f"{ci['key']} round {r['number']}: recounting the ballots gives another result than "
                          f"the signed record", ci["record_file"])
            results.append(result)
            rounds_checked += 1
        if content is not None:
            if set(rec_rounds) != {r["number"] for r in ci["rounds"] if r["status"] == "tallied"}:
                _fail(f"{ci['record_file']} covers other rounds than the bundle", ci["record_file"])
            if not results or tally.item_result(ci["key"], ci["kind"], results) != content.get("result"):
                _fail(f"{ci['key']}: the signed record's result differs from the recount", ci["record_file"])

    uncovered = head_seq - max((c["seq"] for c in cps), default=0)
    return {"ok": True, "events": head_seq, "head": head_hash, "checkpoints": len(cps),
            "items": len(citems), "rounds_recounted": rounds_checked, "ballots": total_ballots,
            "records": len(signed_records), "keys": dict(fps), "events_after_last_checkpoint": uncovered,
            "sessions": [{"id": sid, "name": sessions[sid].get("name"), "closed": sid in session_closed,
                          "closed_at_event": session_closed.get(sid)}
                         for sid in sorted(sessions, key=lambda x: (0, x, "") if _is_int(x) else (1, 0, str(x)))]}


README = """\
# 审计包 · Audit bundle

本文件夹是表决计票服务导出的审计包，可以离线核验，无需访问服务或数据库。
This folder is an audit bundle exported by the ballot service. It can be checked offline,
without the service or its database.

## 一键核验 · Verify with the tool

    ballot-service audit verify 本文件夹 --key 公钥文件或指纹
    ballot-service audit verify THIS_FOLDER --key PUBLIC_KEY.pem   # or --key "ab12 cd34 ef56 7890"

全部检查通过时退出码为 0；否则退出码为 1，并说明第一项未通过的检查。
`--key` 应当是您从公开渠道（如公告、纸质决议记录）独立取得的公钥或指纹，不要只信任本文件夹里的公钥。
Exit code 0 when every check holds; 1 and the first failed check otherwise. Give `--key` a
public key or fingerprint you obtained independently (public notice, printed record): do not
trust only the key inside this folder.

核验内容 · What is checked:
1. manifest.json 中每个文件的 sha256 / the sha256 of every file in manifest.json;
2. 审计日志哈希链 / the audit hash chain (events.jsonl);
3. 检查点签名，且其链头在链中；每次表决结束（vote_closed）和每次闭会（session_closed）都有本机构密钥签名的检查点；
   闭会之后该会次不再有签到、请假、新增事项或开始表决 / checkpoint signatures, and their heads are in the
   chain; every vote close and every session close has a checkpoint signed by the body's key; a closed
   session has no later check-in, leave, new item or vote opening;
4. 每张选票的签名及其与事项、轮次的绑定，序列号不重复，且与日志中的 cast_accepted 事件一一对应 /
   every ballot's signature and item/round binding, unique serials, one-to-one with the log's
   cast_accepted events (including the submission digest, so marks cannot be altered);
5. 收回票数不多于发出票数，否则决议记录必须宣告表决无效 / returned ≤ issued unless the record says void;
6. 根据选票和计数重新计票，与日志中的计票结果和已签名决议记录一致 / a full recount matches the tally
   events and the signed records;
7. 决议记录签名及其审计链头 / record signatures and their audit heads.

## 文件 · Files

| 文件 file | 内容 contents |
|---|---|
| `events.jsonl` | 审计事件，按 seq 排列 / audit events by seq: seq, at, kind, data, prev_hash, hash |
| `checkpoints.json` | 签名的链头 / signed chain heads: seq, head_hash, reason (`vote_closed:<事项>:<轮次>` 表决结束 / `session_closed:<会次>` 闭会), signature, key_fingerprint |
| `counts.json` | 每个事项、每轮的发出、收回、拒收、应到、实到、候选项、应选数、规则 / per item and round counts |
| `ballots/<事项>-r<轮次>.jsonl` | 收回的有效提交：serial, signature, marks；按序列号排序；无记名表决不含任何代表身份；记名表决含 member_id, member_no |
| `records/<事项>.json` | 决议记录：signed（签名所覆盖的原文）、signature、key_fingerprint、record_id |
| `keys/*.pub.pem`, `keys/fingerprints.json` | 公钥及指纹 / public keys and fingerprints |
| `manifest.json` | 其余所有文件的 sha256 / sha256 of every other file |

## 选票签名覆盖什么 · What a ballot signature covers

选票签名（Ed25519）覆盖下列 JSON 的规范形式（键排序、无空白、UTF-8）：
The ballot signature (Ed25519) covers the canonical JSON (sorted keys, no white space, UTF-8) of

    {"body":<body id>,"item":<item id>,"round":<round number>,"serial":"<serial>","session":<session id>,"v":1}

其中 body、session、item、round 取自 counts.json 中该选票文件所属的轮次，serial 取自该行。
body, session, item and round are those counts.json gives for the round the ballots file
belongs to; serial is on the line. A ballot moved to another round's file fails its check.

## 用 openssl 核验决议记录 · Check a record with openssl

    python3 -c 'import json,sys;sys.stdout.buffer.write(json.load(open(sys.argv[1]))["signed"].encode())' records/ITEM.json > record.txt
    python3 -c 'import json,sys,base64;s=json.load(open(sys.argv[1]))["signature"];sys.stdout.buffer.write(base64.urlsafe_b64decode(s+"="*(-len(s)%4)))' records/ITEM.json > sig.bin
    openssl pkeyutl -verify -pubin -inkey keys/body-1.pub.pem -rawin -in record.txt -sigfile sig.bin

公钥指纹 / key fingerprint (first 16 hex digits of sha256 of the raw key, grouped by four):

    openssl pkey -pubin -in keys/body-1.pub.pem -outform DER | tail -c 32 | sha256sum

## 手工核验哈希链 · The hash chain by hand

每个事件 / each event: `hash = sha256(prev_hash_ascii || canonical({"at":at,"data":data,"kind":kind,"seq":seq}))`,
第一个事件的 prev_hash 为 64 个 0 / the first prev_hash is 64 zeros. `data` is the canonical JSON
text as stored. Checkpoints sign `{"head":…,"reason":…,"seq":…,"type":"audit-checkpoint"}`.

文件清单 / the manifest: `sha256sum` of each file must equal its entry in manifest.json.

## 无记名投票 · Secret ballots

无记名表决的选票文件不含代表、席位或终端信息，并按随机序列号排序，文件顺序不反映投票顺序。
日志中的 cast_accepted 事件不带时间（at 为 null）、代表或终端，只有轮次、序列号和提交摘要；
它们在哈希链中的先后就是服务收到选票的先后，这是链本身所需要的顺序。
Secret ballots carry no member, seat or terminal, and are sorted by their random serial, so the
file order reveals nothing about the order of voting. The log's cast_accepted events carry no
time (`at` is null), member or terminal, only the round, serial and submission digest; their
place in the chain is the order in which the service received the ballots, which the chain
itself needs.

## 回执与胁迫风险 · Receipts and coercion

本审计包公开每张有效选票的序列号和所作选择，任何人都可以据此重新计票。代价是：记得自己选票序列号
或回执码（回执码可由序列号、签名和选择算出）的代表，能在本审计包中找到自己的选票，从而向他人证明
自己投了什么票；胁迫或收买投票的人也可以索要这种证明。这是有意的取舍：可公开核验的计票优先于
"无法证明自己的投票"（receipt-freeness）。审计包本身不把任何序列号与代表联系起来，能建立这一联系的
只有代表自己掌握的序列号或回执。会议组织方应当事先告知代表，并且不允许任何人收集或查看代表的
选票、序列号或回执。

This bundle publishes every accepted ballot's serial and marks so that anyone can recount. The
price: a member who keeps their ballot's serial or receipt code (the code can be computed from
the serial, signature and marks) can find their own ballot here and prove to someone else how
they voted, and whoever coerces or buys votes can demand that proof. This is a deliberate
trade-off: a publicly checkable count is preferred over receipt-freeness. The bundle itself ties
no serial to any member; only the member's own serial or receipt does. Organisers should tell
members so, and let no one collect or inspect members' ballots, serials or receipts.
"""
