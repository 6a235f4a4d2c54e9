"""Check 7: every ballot is signed for its body, session, item and round (a paper ballot by
the body's Ed25519 key; a terminal ballot by its round's RSA key, RSA-PSS over
prefix || ballot_message(round_ref, serial), that key being the one announced in the chain
under the body's signature), its serial is unique in the bundle, the ballots file holds as many
ballots as the log's casts_accepted batch counts sum to, and, once the vote closed, exactly the
set its close committed to (serials, submission digests, members of a named vote: no marks were
changed) and as many receipts, apart from the ballots, as the close committed to. The per-file half runs in
worker processes (pool.py), started early so it overlaps checks 3 to 6."""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ballot_service import rules
from ballot_service.bundle import layout, pool
from ballot_service.bundle.checks_chain import EventIndex
from ballot_service.bundle.checks_files import Keys
from ballot_service.bundle.encoding import DECODE, ENCODE
from ballot_service.bundle.errors import BundleInvalid, fail
from ballot_service.bundle.readers import read_lines
from ballot_service.crypto import blind_ballots, blind_rsa
from ballot_service.crypto import keys as keys_mod
from ballot_service.formats import ballot_set
from ballot_service.formats import ballots as ballots_mod
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import b64url_decode
from ballot_service.numbers import is_int
from ballot_service.rules.election import WRITE_IN
from ballot_service.vocab import Channel, ItemKind

# A 64-byte signature in canonical unpadded base64url: 85 free characters, then one whose low
# four bits are zero (the last 2 bits of the 512 are the only ones it carries).
DECODE_B64 = b64url_decode
_SIG_RE = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
_SERIAL_FULL = re.compile(r"[0-9a-f]{32}")
_RECEIPT = re.compile(r"[0-9a-f]{64}")
# A secret ballot line as the service writes it. A line that does not match takes the general path.
_SECRET_LINE = re.compile(r'\{"marks":(\{.*\}),"serial":"([0-9a-f]{32})","signature":"([A-Za-z0-9_-]{85}[AQgw])"\}')


def _raw_key(pub: Ed25519PublicKey) -> bytes:
    """The key as bytes a worker process can be sent."""
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_ballots_file(bundle: str, rel: str, ids: tuple, raw_key: bytes, secret: bool):
    """Everything about one ballots file that needs no other file: form, order, signatures,
    submission digests. Runs in a worker process for large bundles, so it returns its verdict
    rather than raising (an exception's `where` does not survive pickling):
    ("ok", [(serial, marks, digest, member_id), …]) or ("error", message, where).

    One pass per line, and no general re-encoding: once the fields are known to be exactly
    right, the canonical line, the signed payload and the submission text are assembled from
    pieces (the serial is 32 hex digits and the signature base64url, so neither needs quoting),
    and compared byte for byte with the line. The result is what canonical_json gives."""
    body_id, session_id, item_id, round_no = ids
    try:
        lines = read_lines(Path(bundle), rel)
    except BundleInvalid as exc:
        return ("error", exc.message, exc.where)
    fields = {"serial", "signature", "marks"} | (set() if secret else {"member_id", "member_no"})
    verify_sig = Ed25519PublicKey.from_public_bytes(raw_key).verify
    if all(is_int(x) for x in ids):
        pay_pre = f'{{"body":{body_id},"item":{item_id},"round":{round_no},"serial":"'
        pay_post = f'","session":{session_id},"v":{ballots_mod.FORMAT_VERSION}}}'
    else:  # counts.json is damaged; the later checks will say how. Stay exact meanwhile.
        pay_pre = pay_post = None
    token_pre = ballots_mod.TEXT_PREFIX + "."
    sha256, b64enc, b64dec = hashlib.sha256, base64.urlsafe_b64encode, base64.urlsafe_b64decode
    encode, sig_ok, serial_ok = ENCODE, _SIG_RE.fullmatch, _SERIAL_FULL.fullmatch
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
                    marks = DECODE(marks_json)
                except ValueError:
                    marks = None
                if isinstance(marks, dict) and encode(marks) == marks_json:
                    marks_seen[marks_json] = marks
                else:
                    m = None
        if m is None:  # the general path: parse, and say exactly what is wrong if anything is
            try:
                ln = DECODE(text) if text is not None else None
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


def start_ballot_jobs(b: Path, counts, keys: Keys) -> tuple[dict, object]:
    """Start check_ballots_file on every ballots file that counts.json (not yet checked) names,
    while checks 3 to 6 run. Returns the jobs by (file, ids, secret) and the pool to shut down.
    A job's error is only reported when check 7 is reached, so the first failing check stays
    first."""
    jobs = []
    try:
        for ci in counts["items"]:
            for r in ci["rounds"]:
                rel = r.get("ballots_file")
                if r.get("round_ref") is not None:
                    continue  # a blind-signed terminal round: checked in check 7 itself (_check_blind_file)
                pub = keys.by_name.get(keys_mod.body_key_name(ci["body"]["id"])) if is_int(ci["body"]["id"]) \
                    else None
                if isinstance(rel, str) and pub is not None and (b / rel).is_file():
                    ids = (ci["body"]["id"], ci["session"]["id"], ci["id"], r["number"])
                    jobs.append((rel, ids, _raw_key(pub), bool(ci["secret"])))
    except (KeyError, TypeError, AttributeError):
        return {}, None
    workers = pool.open_pool(sum((b / j[0]).stat().st_size for j in jobs))
    futures = {(rel, ids, secret): pool.submit(workers, check_ballots_file, str(b), rel, ids, raw, secret)
               for rel, ids, raw, secret in jobs}
    return futures, workers


def check_ballots(b: Path, citems: list[dict], keys: Keys, x: EventIndex, jobs: dict
                  ) -> tuple[dict[int, list[dict]], int]:
    """7. Returns the marks of every round's ballots, by round id, and the number of ballots."""
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
            if not is_int(body_id) or keys.by_name.get(keys_mod.body_key_name(body_id)) is None:
                fail(f"{rel}: no public key for body {body_id} in keys/", rel)
            if r["round_ref"] is not None:
                lines = _check_blind_file(b, ci, r, rel, keys, x)
                _match_cast_events(b, ci, r, rel, lines, x, seen_serials)
                marks_by_round[r["round_id"]] = [ln[1] for ln in lines]
                total_ballots += len(lines)
                continue
            ids = (body_id, session_id, ci["id"], r["number"])
            job = jobs.get((rel, ids, bool(ci["secret"])))
            if job is None:  # counts.json changed after the jobs started: check now
                job = pool.Inline(check_ballots_file, str(b), rel, ids,
                                  _raw_key(keys.by_name[keys_mod.body_key_name(body_id)]), bool(ci["secret"]))
            res = job.result()
            if res[0] == "error":
                fail(res[1], res[2])
            lines = res[1]
            _match_cast_events(b, ci, r, rel, lines, x, seen_serials)
            marks_by_round[r["round_id"]] = [ln[1] for ln in lines]
            total_ballots += len(lines)
    return marks_by_round, total_ballots


def _match_cast_events(b: Path, ci: dict, r: dict, rel: str, lines: list, x: EventIndex,
                       seen_serials: dict) -> None:
    """One file's ballots against the serials seen so far, the round's casts_accepted counts
    and, once it closed, the commitment its vote_closed event signed (ballots_commitment)."""
    cand_set = set(r["candidates"] or [])
    # an evaluation's ballots carry its option keys (counts.json rule.options), else 赞成/反对/弃权/无效
    allowed = set(rules.MARKS) if ci["kind"] != ItemKind.EVALUATION \
        else {*(ci["rule"].get("options") or ()), "abstain", "void"}
    marks_ok: set[int] = set()  # ids of the marks dicts of `lines` already checked
    for n, (serial, marks, _digest, member_id) in enumerate(lines, 1):
        where = f"{rel}:{n}"
        if serial in seen_serials:
            fail(f"serial {serial} appears twice in the bundle ({seen_serials[serial]} and {where}): "
                 f"a ballot was counted twice", where)
        seen_serials[serial] = where
        if ci["secret"] and member_id is not None:
            fail(f"secret ballot {serial} in {rel} names a member", where)
        if id(marks) not in marks_ok:  # equal marks in one file arrive as one shared dict
            listed = {k: m for k, m in marks.items() if not k.startswith(WRITE_IN)} \
                if isinstance(marks, dict) and ci["kind"] == ItemKind.ELECTION else marks  # 另选他人 lines
            if not isinstance(marks, dict) or listed.keys() != cand_set \
                    or any(m not in allowed for m in marks.values()):
                fail(f"ballot {serial} in {rel} does not mark exactly this round's candidates", where)
            marks_ok.add(id(marks))
    accepted = x.accepted.get(r["round_id"], 0)
    if len(lines) != accepted:
        fail(f"{rel} holds {len(lines)} ballots but the event log's casts_accepted counts for this round "
             f"sum to {accepted}: a ballot was {'added' if len(lines) > accepted else 'removed'}", rel)
    if r["returned"] != len(lines):
        fail(f"counts.json says {r['returned']} returned for {ci['key']} round {r['number']}, "
             f"but {rel} holds {len(lines)} ballots", "counts.json")
    seq, d = x.closed.get((ci["id"], r["number"]), (None, None))
    if d is not None and ballot_set.ballots_commitment((s, dg, m) for s, _, dg, m in lines) \
            != d.get("ballots_commitment"):
        fail(f"the ballots in {rel} are not the set the vote's close committed to (event {seq}): "
             f"marks were changed, or ballots swapped", rel)
    _check_receipts(b, r, len(lines), seq, d)


def _check_receipts(b: Path, r: dict, ballots: int, seq, closed: dict | None) -> None:
    """The round's receipts: sorted, 64 hex digits each, one per ballot, and (once closed) the
    set the close committed to. Not linked to any ballot, so none can be matched to marks."""
    rel = r.get("receipts_file")
    if not isinstance(rel, str) or not rel.startswith(layout.RECEIPTS_DIR + "/"):
        fail(f"round {r['round_id']} names no receipts file", "counts.json")
    receipts = []
    for n, line in enumerate(read_lines(b, rel), 1):
        text = line.decode("ascii", "replace")
        if not _RECEIPT.fullmatch(text) or (receipts and text < receipts[-1]):
            fail(f"{rel} line {n} is not a receipt (64 lower-case hex digits) in sorted order", f"{rel}:{n}")
        receipts.append(text)
    if len(receipts) != ballots:
        fail(f"{rel} holds {len(receipts)} receipts for {ballots} ballots: one receipt per ballot", rel)
    if closed is not None and ballot_set.receipts_commitment(receipts) != closed.get("receipts_commitment"):
        fail(f"the receipts in {rel} are not the set the vote's close committed to (event {seq})", rel)


def _round_key(b: Path, ci: dict, r: dict, keys: Keys, x: EventIndex):
    """The round's RSA key, as announced in the chain under the body's signature."""
    where = r["round_key_file"] or "counts.json"
    ann = x.round_keys.get(r["round_id"])
    if ann is None:
        fail(f"round {r['round_ref']} has no round_key_announced event: its key was never announced", where)
    seq, d = ann
    if d.get("round_ref") != r["round_ref"] or d.get("item_id") != ci["id"] or d.get("round") != r["number"]:
        fail(f"the key announced at event {seq} is not for {ci['key']} round {r['number']}", f"events.jsonl:{seq}")
    body_pub = keys.by_name.get(keys_mod.body_key_name(ci["body"]["id"]))
    payload = {k: v for k, v in d.items() if k != "signature"}
    if body_pub is None or not isinstance(d.get("signature"), str):
        fail(f"the announcement of round {r['round_ref']}'s key is not signed", f"events.jsonl:{seq}")
    try:
        body_pub.verify(DECODE_B64(d["signature"]), canonical_json(payload))
        der = DECODE_B64(d["public_key_der"])
        key = blind_ballots.load_round_key(der)
    except (InvalidSignature, ValueError, TypeError, KeyError):
        fail(f"the announcement of round {r['round_ref']}'s key (event {seq}) is not signed by the body's key "
             f"or holds no RSA key", f"events.jsonl:{seq}")
    if hashlib.sha384(der).hexdigest() != d.get("fingerprint"):
        fail(f"the announced key of round {r['round_ref']} does not match its fingerprint", f"events.jsonl:{seq}")
    if r["round_key_file"] != layout.round_key_file(r["round_ref"]) or \
            (b / r["round_key_file"]).read_bytes() != blind_rsa.public_key_pem(key):
        fail(f"{where} is not the key announced for round {r['round_ref']}", where)
    return key


def _check_blind_file(b: Path, ci: dict, r: dict, rel: str, keys: Keys, x: EventIndex) -> list:
    """A terminal round's ballots: canonical lines sorted by serial, each with an RSA-PSS
    signature by the round's announced key. [(serial, marks, digest, member_id), …]
    A hybrid round's file holds its paper ballots too, signed with the round's key like the
    tablets' (nothing tells them apart): as many lines as by_channel says came back by both
    channels (whose split checks_counts takes from the close)."""
    key = _round_key(b, ci, r, keys, x)
    secret = bool(ci["secret"])
    fields = {"serial", "signature", "prefix", "marks"} | (set() if secret else {"member_id", "member_no"})
    hybrid = ci["channel"] == Channel.HYBRID
    out, prev = [], ""
    for n, line in enumerate(read_lines(b, rel), 1):
        where = f"{rel}:{n}"
        try:
            ln = DECODE(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            ln = None
        if not isinstance(ln, dict) or ln.keys() != fields or ENCODE(ln) != line.decode("utf-8"):
            fail(f"{rel} line {n} is not a canonical ballot line with the fields {', '.join(sorted(fields))}", where)
        try:
            ballot = blind_ballots.parse({**ln, "round_ref": r["round_ref"]})
        except ValueError as exc:
            fail(f"ballot on line {n} of {rel} is malformed: {exc}", where)
        if ballot.serial <= prev:
            fail(f"{rel} is not sorted by serial at line {n}: lines were moved or repeated", where)
        prev = ballot.serial
        try:
            blind_ballots.verify(key, ballot)
        except InvalidSignature:
            fail(f"ballot {ballot.serial} in {rel}: its RSA-PSS signature does not verify with the key announced "
                 f"for round {r['round_ref']} (forged, or moved from another round)", where)
        digest = hashlib.sha256(canonical_json({"ballot": ballot.as_object(), "marks": ln["marks"]})).hexdigest()
        out.append((ballot.serial, ln["marks"], digest, ln.get("member_id")))
    split = (r.get("by_channel") or {}).get("returned") if hybrid else None
    if split is not None and split.get("paper", 0) + split.get("terminal", 0) != len(out):
        fail(f"{rel} holds {len(out)} ballots, but counts.json says {split.get('terminal')} came back by tablet "
             f"and {split.get('paper')} on paper", rel)
    return out
