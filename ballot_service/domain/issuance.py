"""Blind issuance of terminal ballots (RFC 9474 RSA blind signatures): the round's key,
its announcement, one blind signature per eligible member (replacements and a hybrid vote's
paper ballots: further_ballots.py), and forgetting
the private key when the round closes.

At opening (`start_round_key`) the round gets a fresh RSA-2048 key. Its public key is
announced in the audit chain (`round_key_announced`, signed by the body's Ed25519 key, with
the SubjectPublicKeyInfo PEM and the SHA-384 fingerprint of its DER: SHA-384 because the
tablet has it without WebCrypto) before any ballot is issued. Each present member with a seat terminal gets an Issuance row (issued 0, allowed 1).

A tablet makes a random serial, blinds msg_prefix || ballot_message(round_ref, serial) with
the announced key and sends only the blinded value (`blind_sign_for_terminal`). The service
checks that the terminal's member may still receive one (issued < allowed), counts it, signs
and answers: it stores neither the blinded value nor the signature, and it cannot link the
ballot cast later to this request (the blinding factor never leaves the tablet).

Where the private key lives while the round is open: in the round's own row
(Round.blind_private_key), not in process memory, because several server processes (and a
restart in the middle of a vote) must all be able to sign for the open round; stored wrapped
(crypto/key_wrap.py: AES-256-GCM under a key derived from the body's unlocked signing key,
which every node loads from the shared keys folder), so a copy of the database taken during
the vote cannot mint ballots. It authorises nothing but ballots of that one round. `forget_round_key`, called in
the closing transaction, sets it to NULL, and SQLite runs with secure_delete (db/) so the
page no longer holds the bytes once the close is committed; a closed round's key is never
needed again (casts are refused once the round is closed; checking ballots needs only the
announced public key).
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.crypto import blind_ballots, blind_rsa, key_wrap, keys
from ballot_service.db import begin_write, in_write_transaction, read_phase
from ballot_service.domain import audit, group_commit, round_facts
from ballot_service.errors import Conflict, InvalidInput, NotFound, Unauthorized
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import EncodingError, b64url_decode, b64url_encode
from ballot_service.models import Attendance, Issuance, Item, Round, Sitting, Terminal
from ballot_service.vocab import BLIND_CHANNELS, AuditKind, Presence, RoundStatus

ANNOUNCE_EVENT = AuditKind.ROUND_KEY_ANNOUNCED
WRAP_PURPOSE = "round-blind-key-wrap/v1"  # the label of the wrapping key (crypto/key_wrap.py)


def key_fingerprint(der: bytes) -> str:
    return hashlib.sha384(der).hexdigest()


def announcement_payload(item: Item, rnd: Round, der: bytes, pem: str, body_key_fp: str) -> dict:
    """What the body's key signs: canonical_json of this dict (the event adds `signature`)."""
    return {"item_id": item.id, "round": rnd.number, "round_id": rnd.id, "round_ref": rnd.ref,
            "public_key_der": b64url_encode(der), "public_key_pem": pem,
            "fingerprint": key_fingerprint(der), "body_key_fingerprint": body_key_fp}


def start_round_key(db: Session, settings: Settings, item: Item, rnd: Round) -> None:
    """Generate the round's key, keep it with the round, announce its public half."""
    private = blind_rsa.generate_round_key()
    der = blind_rsa.public_key_der(private)
    rnd.blind_public_key = der
    rnd.blind_key_fingerprint = key_fingerprint(der)
    body_key = keys.body_signing_key(settings, item.sitting.body_id)
    rnd.blind_private_key = key_wrap.wrap(body_key, WRAP_PURPOSE, private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), _wrap_context(rnd))
    payload = announcement_payload(item, rnd, der, blind_rsa.public_key_pem(private).decode("ascii"),
                                   body_key.fingerprint)
    signature = b64url_encode(body_key.sign(canonical_json(payload)))
    audit.append(db, ANNOUNCE_EVENT, {**payload, "signature": signature}, sitting_id=item.sitting_id)


def _wrap_context(rnd: Round) -> bytes:
    return f"round {rnd.id}".encode("ascii")  # as _unwrapped reads it


def round_private_key(settings: Settings, body_id: int, rnd: Round):
    """The open round's private key (PKCS#8 DER), unwrapped with the body's signing key."""
    if rnd.blind_private_key is None:
        raise Conflict("this round has no signing key", where="round_ref", zh="本轮没有签名密钥")
    return _unwrapped(settings, body_id, rnd.id, rnd.blind_private_key)


def _unwrapped(settings: Settings, body_id: int, round_id: int, wrapped: bytes):
    try:
        return key_wrap.unwrap(keys.body_signing_key(settings, body_id), WRAP_PURPOSE, wrapped,
                               f"round {round_id}".encode("ascii"))
    except key_wrap.UnwrapError:
        raise Conflict("this round's signing key does not open with the body's signing key (was the body's "
                       "key replaced during the vote?)", where="round_ref",
                       zh="本轮签名密钥无法用本机关的签名密钥解开（表决期间是否更换了机关密钥？）") from None


def make_eligible(db: Session, rnd: Round, pairs: list[tuple[int, int | None]]) -> int:
    """One Issuance row per present member, (member id, terminal id or None), in one INSERT;
    only members with a terminal can be issued one. How many can."""
    if pairs:
        db.execute(insert(Issuance), [{"round_id": rnd.id, "member_id": member_id, "terminal_id": terminal_id,
                                       "issued": 0, "allowed": 1 if terminal_id is not None else 0}
                                      for member_id, terminal_id in pairs])
    return sum(terminal_id is not None for _, terminal_id in pairs)


def forget_round_key(rnd: Round) -> None:
    rnd.blind_private_key = None
    if rnd.blind_public_key is not None:  # and this process's copy in OpenSSL (other nodes' expire)
        blind_rsa.forget_private(blind_ballots.load_round_key(rnd.blind_public_key))


def is_paper_serial(db: Session, settings: Settings, round_id: int, serial: str) -> bool | None:
    """Whether `serial` is one of the open hybrid round's paper ballots (allow_paper); None
    once the round's key is gone (intake refuses its ballots as late then). The mark's key is
    derived from the round's private key at each call, never kept in memory: with several app
    nodes a copy on one would outlive the close another node made (forget_round_key), and the
    key tells which of the round's casts came on paper, and so from which deputies."""
    with read_phase(db):  # before intake's write lock, as the round's public key is read
        rnd = db.get(Round, round_id)
        if rnd is None or rnd.blind_private_key is None:
            return None
        body_id = rnd.item.sitting.body_id
        key = blind_ballots.paper_serial_key(round_private_key(settings, body_id, rnd), rnd.ref)
    return blind_ballots.is_paper_serial(key, serial)


def _open_round_of_terminal(db: Session, terminal_id: int, round_ref: str):
    """The terminal's Issuance in the open round `round_ref` names (in a ballot set several of
    its rounds are open at once), with that round and its item."""
    rows = db.execute(
        select(Issuance, Round, Item).join(Round, Round.id == Issuance.round_id)
        .join(Item, Item.id == Round.item_id)
        .where(Issuance.terminal_id == terminal_id, Round.status == RoundStatus.OPEN,
               Item.channel.in_(BLIND_CHANNELS))).all()
    if not rows:
        raise NotFound("no vote is open for this terminal", where="ballot", zh="本终端当前没有进行中的表决")
    for issuance, rnd, item in rows:
        if round_ref == rnd.ref:
            return issuance, rnd, item
    raise Conflict(f"round {round_ref} is not the open round ({', '.join(r.ref for _, r, _ in rows)})",
                   where="round_ref", zh="所请求的轮次不是当前进行中的表决")


def blind_sign_for_terminal(db: Session, settings: Settings, terminal: Terminal, round_ref: str,
                            blinded_text: str) -> bytes:
    """Sign one blinded ballot for the member this terminal was assigned at opening, once.

    Refused (409, nothing handed out) when the member has received every signature allowed;
    the count is taken by one conditional UPDATE, so two concurrent requests cannot both
    pass. Stores only the count: no serial, no blinded value, no signature.

    The checks and the RSA operation run outside the write lock; only the count is taken under
    it, by a group commit (one durable COMMIT for the concurrent requests of a process, as casts
    are stored: a whole hall asks within seconds of 开始表决). A signature made for a request
    whose count is then refused never leaves the server. Inside a caller's write transaction
    the count is taken there (the caller commits)."""
    return blind_sign_set_for_terminal(db, settings, terminal, [(round_ref, blinded_text)])[0]


def blind_sign_set_for_terminal(db: Session, settings: Settings, terminal: Terminal,
                                requests: list[tuple[str, str]]) -> list[bytes]:
    """One blind signature for each (round_ref, blinded_msg): a ballot set's rounds (each with
    its own key) in one request. All or none: the counts are taken together, and if any round
    refuses (already issued, closed) none is counted and no signature leaves the server. The
    signatures are of separate keys over separately blinded values: nothing stored or signed
    ties one round's ballot to another's."""
    if not requests or len({ref for ref, _ in requests}) != len(requests):
        raise InvalidInput("name each open round once", where="ballots", zh="每个进行中的轮次须且只能申请一张选票")
    blinded = [_blinded(text) for _, text in requests]
    writing = in_write_transaction(db)
    with read_phase(db):
        found = [_open_round_of_terminal(db, terminal.id, ref) for ref, _ in requests]
        issuance, _, item = found[0]
        if any(i.member_id != issuance.member_id for i, _, _ in found):
            raise Conflict("these rounds were opened for different members of this terminal", where="ballots",
                           zh="这些轮次的本席代表不一致")
        _require_present(db, item.sitting_id, issuance.member_id)
        job = _IssueJob(tuple(rnd.id for _, rnd, _ in found), issuance.member_id, item.sitting_id)
        privates = [load_private_key(round_private_key(settings, item.sitting.body_id, rnd)) for _, rnd, _ in found]
        issued_already = any(i.issued >= i.allowed for i, _, _ in found)
    for private, value in zip(privates, blinded):
        if len(value) != private.key_size // 8:
            raise InvalidInput(f"blinded_msg must be {private.key_size // 8} bytes", where="blinded_msg",
                               zh=f"盲化消息须为 {private.key_size // 8} 字节")
    if issued_already:  # a resend: refused with no RSA operation (a flood from one tablet); the count
        raise _already_issued()  # under the write lock decides every other request
    sigs = []
    for private, value in zip(privates, blinded):
        try:
            sigs.append(blind_rsa.blind_sign(private, value))
        except ValueError as exc:
            raise InvalidInput(str(exc), where="blinded_msg", zh="盲化消息无效") from None
    if writing:
        _take_counts(db, [job])
    else:
        group_commit.group_for(db.get_bind(), _run_issue_batch, kind="issuance").submit(job)
    job.outcome()
    for _, rnd, _ in found:
        round_facts.learn(db, rnd.id)
    return sigs


class OpenSigner(NamedTuple):
    """An open blind-signed round's key as stored (wrapped under the body's key): what the ASGI
    front signs a seat's ballot with (web/issue_on_loop.py), read once per change."""

    round_id: int
    sitting_id: int
    body_id: int
    wrapped: bytes


def open_signers(db: Session, sitting_id: int) -> dict[str, OpenSigner]:
    """The sitting's open blind-signed rounds, by round_ref."""
    rows = db.execute(select(Round.id, Round.blind_private_key, Sitting.body_id)
                      .join(Item, Item.id == Round.item_id).join(Sitting, Sitting.id == Item.sitting_id)
                      .where(Item.sitting_id == sitting_id, Round.status == RoundStatus.OPEN,
                             Item.channel.in_(BLIND_CHANNELS), Round.blind_private_key.is_not(None)))
    return {f"r{r.id}": OpenSigner(r.id, sitting_id, r.body_id, r.blind_private_key) for r in rows}


def signer_key(settings: Settings, signer: OpenSigner):
    """The open round's private key, unwrapped (sign_for_seat's `private`)."""
    return load_private_key(_unwrapped(settings, signer.body_id, signer.round_id, signer.wrapped))


def sign_for_seat(private, signer: OpenSigner, terminal_id: int, blinded_text) -> tuple["_IssueJob", bytes]:
    """blind_sign_for_terminal for one round, without a database read: the signature with the
    round's key (`private`: signer_key), and the job that takes the count (count_nowait). The
    job finds the terminal's member under the write lock and refuses as blind_sign_for_terminal
    does (no vote open for this terminal, absent, already issued); the signature may leave the
    server only once the job succeeded."""
    value = _blinded(blinded_text)
    if len(value) != private.key_size // 8:
        raise InvalidInput(f"blinded_msg must be {private.key_size // 8} bytes", where="blinded_msg",
                           zh=f"盲化消息须为 {private.key_size // 8} 字节")
    try:
        sig = blind_rsa.blind_sign(private, value)
    except ValueError as exc:
        raise InvalidInput(str(exc), where="blinded_msg", zh="盲化消息无效") from None
    return _IssueJob((signer.round_id,), None, signer.sitting_id, terminal_id), sig


def count_nowait(engine, job: "_IssueJob", notify) -> None:
    """Queue sign_for_seat's job in the process's issuance group commit; `notify()` is called on
    another thread once it is counted or refused (then job.outcome() answers)."""
    group_commit.group_for(engine, _run_issue_batch, kind="issuance").submit_nowait(job, notify)


def _blinded(text) -> bytes:
    if not isinstance(text, str):
        raise InvalidInput("blinded_msg must be base64url text", where="blinded_msg", zh="盲化消息须为 base64url 文本")
    try:
        return b64url_decode(text)
    except EncodingError:
        raise InvalidInput("blinded_msg is not base64url", where="blinded_msg", zh="盲化消息不是 base64url") from None


def _already_issued() -> Conflict:  # one refusal, made in two places
    return Conflict("this member has already received a ballot in this round", where="ballot",
                    zh="本席代表本轮已领取选票，不再发出")


def _require_present(db: Session, sitting_id: int, member_id: int) -> None:
    present = db.scalar(select(Attendance.id).where(Attendance.sitting_id == sitting_id,
                                                    Attendance.member_id == member_id,
                                                    Attendance.status == Presence.PRESENT))
    if present is None:
        raise Conflict("the member of this terminal is not present", where="member", zh="本席代表未签到")


def load_private_key(der: bytes):
    """The round's key (not kept: forget_round_key erases it at the close). It is our own
    (start_round_key made it, wrapped under the body key), and blind_sign checks every
    result with the public exponent, so the ~30 ms RSA key validation of a load is skipped."""
    return serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)


class _IssueJob(group_commit.Job):
    """One request's blind-signature counts (one round, or a ballot set's rounds), taken under
    the write lock all together or not at all."""

    __slots__ = ("round_ids", "member_id", "sitting_id", "terminal_id")

    def __init__(self, round_ids: tuple[int, ...], member_id: int | None, sitting_id: int,
                 terminal_id: int | None = None) -> None:
        # member_id None: the terminal's member in the (one) round, found under the lock
        self.round_ids, self.member_id, self.sitting_id = round_ids, member_id, sitting_id
        self.terminal_id = terminal_id
        super().__init__()


def _take_counts(db: Session, jobs: list[_IssueJob]) -> None:
    """Under the write lock: each job's counts, if every round is still open, the member still
    present and a signature still allowed; otherwise that job's refusal (NotFound: no vote
    open; Conflict: absent or already issued) and the counts it took given back.

    A hall's opening brings a batch of up to 64 single-round jobs at a time; one statement per
    job (ORM UPDATE with its two subqueries) took ~1.5 ms each under the lock, so 3,000 tablets
    waited seconds for their counts (benchmarks/bench_hall.py). The single-round jobs of a round
    are counted by one UPDATE ... RETURNING (_TAKE_MANY), each member once; a member's second
    job in the batch, a refusal and a ballot set's jobs take the one-by-one path below."""
    begin_write(db)
    _find_members(db, [job for job in jobs if job.member_id is None])
    by_round: dict[tuple, dict[int, _IssueJob]] = {}
    one_by_one = []
    for job in jobs:
        if job.error is not None:
            continue
        group = by_round.setdefault((job.round_ids[0], job.sitting_id), {}) if len(job.round_ids) == 1 else None
        if group is None or job.member_id in group:
            one_by_one.append(job)
        else:
            group[job.member_id] = job
    for (round_id, sitting_id), group in by_round.items():
        taken = set(db.execute(_TAKE_MANY, {"b_round": round_id, "b_sitting": sitting_id,
                                            "b_members": list(group)}).scalars())
        for member_id, job in group.items():
            if member_id in taken:
                job.result = True
            else:
                one_by_one.append(job)  # refused: _take_one finds out why
    for job in one_by_one:
        _take_one(db, job)


_ISSUANCES = Issuance.__table__
_TAKE_MANY = (update(_ISSUANCES).where(
    _ISSUANCES.c.round_id == bindparam("b_round"),
    _ISSUANCES.c.member_id.in_(bindparam("b_members", expanding=True)),
    _ISSUANCES.c.issued < _ISSUANCES.c.allowed,
    select(Round.id).where(Round.id == bindparam("b_round"), Round.status == RoundStatus.OPEN).exists(),
    select(Attendance.id).where(Attendance.sitting_id == bindparam("b_sitting"),
                                Attendance.member_id == _ISSUANCES.c.member_id,
                                Attendance.status == Presence.PRESENT).exists())
    .values(issued=_ISSUANCES.c.issued + 1).returning(_ISSUANCES.c.member_id))


def _find_members(db: Session, jobs: list[_IssueJob]) -> None:
    """The member each terminal's job is for (its Issuance row in the round), or NotFound; or
    Unauthorized for a terminal revoked since (the caller's snapshot may predate it: Flask
    refuses a revoked credential on every request, so the count does too)."""
    for round_id in {job.round_ids[0] for job in jobs}:
        of_round = [job for job in jobs if job.round_ids[0] == round_id]
        found = {t: (m, revoked) for t, m, revoked in db.execute(
            select(Issuance.terminal_id, Issuance.member_id, Terminal.revoked_at)
            .join(Terminal, Terminal.id == Issuance.terminal_id)
            .where(Issuance.round_id == round_id, Issuance.terminal_id.in_([job.terminal_id for job in of_round])))}
        for job in of_round:
            member_id, revoked = found.get(job.terminal_id, (None, None))
            if revoked is not None:
                job.error = Unauthorized("this terminal was revoked", zh="本终端的凭据已被吊销，请联系秘书处")
            elif member_id is None:
                job.error = NotFound("no vote is open for this terminal", where="ballot", zh="本终端当前没有进行中的表决")
            else:
                job.member_id = member_id


def _take_one(db: Session, job: _IssueJob) -> None:
    taken = []
    for round_id in job.round_ids:
        if _take_count(db, job, round_id):
            taken.append(round_id)
            continue
        for back in taken:  # all or none: a set's ballots are issued together
            db.execute(update(Issuance).where(Issuance.round_id == back, Issuance.member_id == job.member_id)
                       .values(issued=Issuance.issued - 1).execution_options(synchronize_session=False))
        try:
            if db.scalar(select(Round.status).where(Round.id == round_id)) != RoundStatus.OPEN:
                raise NotFound("no vote is open for this terminal", where="ballot", zh="本终端当前没有进行中的表决")
            _require_present(db, job.sitting_id, job.member_id)
            raise _already_issued()
        except (Conflict, NotFound) as exc:
            job.error = exc
        return
    job.result = True


def _take_count(db: Session, job: _IssueJob, round_id: int) -> bool:
    return db.execute(update(Issuance).where(
        Issuance.round_id == round_id, Issuance.member_id == job.member_id,
        Issuance.issued < Issuance.allowed,
        select(Round.id).where(Round.id == round_id, Round.status == RoundStatus.OPEN).exists(),
        select(Attendance.id).where(Attendance.sitting_id == job.sitting_id,
                                    Attendance.member_id == job.member_id,
                                    Attendance.status == Presence.PRESENT).exists())
        .values(issued=Issuance.issued + 1).execution_options(synchronize_session=False)).rowcount == 1


def _run_issue_batch(engine, jobs) -> list:
    """A batch of counts in one transaction and one durable COMMIT (group_commit.run_batch)."""
    return group_commit.run_batch(engine, jobs, _take_counts, lambda db: db.commit())
