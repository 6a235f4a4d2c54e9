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
and answers (issuance_counts.py takes the count): it stores no signature, only the blinded
value's SHA-256 until the close, so that a resend of a request whose answer was lost gets the
same signature again; it cannot link the ballot cast later to this request (the blinding
factor never leaves the tablet, and a blinded value is random whatever it blinds).

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
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.crypto import blind_ballots, blind_rsa, key_wrap, keys
from ballot_service.db import in_write_transaction, insert_rows, read_phase
from ballot_service.domain import audit, group_commit, round_facts
from ballot_service.domain.issuance_counts import (
    IssueJob,
    already_issued,
    blinded_digest,
    forget_blinded,
    not_served,
    require_present,
    run_issue_batch,
    serves,
    take_counts,
)
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import EncodingError, b64url_decode, b64url_encode
from ballot_service.models import Issuance, Item, Member, Round, Sitting, Terminal
from ballot_service.vocab import BLIND_CHANNELS, AuditKind, RoundStatus

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
    """One Issuance row per present member, (member id, terminal id or None), in a few
    multi-row INSERTs (db.insert_rows); only members with a terminal can be issued one. How
    many can."""
    # Core rows, not the ORM's bulk insert: 3,000 of them took 180 ms of the opening's 500
    # through the ORM, before any tablet could be told the vote is open.
    insert_rows(db.connection(), Issuance.__table__,
                [{"round_id": rnd.id, "member_id": member_id, "terminal_id": terminal_id,
                  "issued": 0, "allowed": 1 if terminal_id is not None else 0} for member_id, terminal_id in pairs])
    return sum(terminal_id is not None for _, terminal_id in pairs)


def forget_round_key(db: Session, rnd: Round) -> None:
    """In the closing transaction: the round's private key, and the blinded values' digests."""
    rnd.blind_private_key = None
    forget_blinded(db, rnd.id)
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

    Refused (409, nothing handed out) when the member has received every signature allowed,
    unless this is the very blinded value signed for them (a lost answer's resend: the same
    signature again, not counted); the count is taken by one conditional UPDATE, so two
    concurrent requests cannot both pass. Stores only the count and the blinded value's
    SHA-256 (until the close): no serial, no signature.

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
        bound, seat = db.execute(select(Terminal.bound_member_id, Terminal.seat).where(Terminal.id == terminal.id)).one()
        member_seat = db.scalar(select(Member.seat).where(Member.id == issuance.member_id))
        if not serves(bound, seat, issuance.member_id, member_seat):
            raise not_served()
        require_present(db, item.sitting_id, issuance.member_id)
        digests = tuple(blinded_digest(value) for value in blinded)
        job = IssueJob(tuple(rnd.id for _, rnd, _ in found), issuance.member_id, item.sitting_id, digests=digests)
        privates = [load_private_key(round_private_key(settings, item.sitting.body_id, rnd)) for _, rnd, _ in found]
        resend = all(i.blinded_sha256 == d for (i, _, _), d in zip(found, digests))
        issued_already = any(i.issued >= i.allowed for i, _, _ in found) and not resend
    for private, value in zip(privates, blinded):
        if len(value) != private.key_size // 8:
            raise InvalidInput(f"blinded_msg must be {private.key_size // 8} bytes", where="blinded_msg",
                               zh=f"盲化消息须为 {private.key_size // 8} 字节")
    if issued_already:  # a new request: refused with no RSA operation (a flood from one tablet); the
        raise already_issued()  # count under the write lock decides every other request
    sigs = []
    for private, value in zip(privates, blinded):
        try:
            sigs.append(blind_rsa.blind_sign(private, value))
        except ValueError as exc:
            raise InvalidInput(str(exc), where="blinded_msg", zh="盲化消息无效") from None
    # A resend too is decided under the write lock: a replacement allowed since this read forgot
    # its digest, and then it is counted as that replacement (further_ballots.py).
    if writing:
        take_counts(db, [job])
    else:
        group_commit.group_for(db.get_bind(), run_issue_batch, kind="issuance").submit(job)
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


def sign_for_seat(private, signer: OpenSigner, terminal_id: int, blinded_text) -> tuple[IssueJob, bytes]:
    """blind_sign_for_terminal for one round, without a database read: the signature with the
    round's key (`private`: signer_key), and the job that takes the count (count_nowait). The
    job finds the terminal's member under the write lock and refuses as blind_sign_for_terminal
    does (no vote open for this terminal, absent, already issued but for a resend of the same
    blinded value); the signature may leave the server only once the job succeeded."""
    value = _blinded(blinded_text)
    if len(value) != private.key_size // 8:
        raise InvalidInput(f"blinded_msg must be {private.key_size // 8} bytes", where="blinded_msg",
                           zh=f"盲化消息须为 {private.key_size // 8} 字节")
    try:
        sig = blind_rsa.blind_sign(private, value)
    except ValueError as exc:
        raise InvalidInput(str(exc), where="blinded_msg", zh="盲化消息无效") from None
    return IssueJob((signer.round_id,), None, signer.sitting_id, terminal_id, (blinded_digest(value),)), sig


def count_nowait(engine, job: IssueJob, notify) -> None:
    """Queue sign_for_seat's job in the process's issuance group commit; `notify()` is called on
    another thread once it is counted or refused (then job.outcome() answers)."""
    group_commit.group_for(engine, run_issue_batch, kind="issuance").submit_nowait(job, notify)


def _blinded(text) -> bytes:
    if not isinstance(text, str):
        raise InvalidInput("blinded_msg must be base64url text", where="blinded_msg", zh="盲化消息须为 base64url 文本")
    try:
        return b64url_decode(text)
    except EncodingError:
        raise InvalidInput("blinded_msg is not base64url", where="blinded_msg", zh="盲化消息不是 base64url") from None


def load_private_key(der: bytes):
    """The round's key (not kept: forget_round_key erases it at the close). It is our own
    (start_round_key made it, wrapped under the body key), and blind_sign checks every
    result with the public exponent, so the ~30 ms RSA key validation of a load is skipped."""
    return serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)


