"""Issue #15 (secrecy follow-up): the open round's private RSA key in a database copy. Before,
Round.blind_private_key held the PKCS#8 DER in clear, so a copy of the database taken during
the vote let its holder sign ballots for the open round and cast them as genuine. It is now
stored wrapped (crypto/key_wrap.py) under a key derived from the body's unlocked signing key;
every app node (and a restarted one) derives the same key from the shared keys folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from helpers_live import Api, blind_ballot, setup_sitting
from sqlalchemy import select, update

from ballot_service import create_app
from ballot_service.crypto import blind_rsa, key_wrap, keys, tablet
from ballot_service.domain import issuance
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Round


def _row(app, *cols):
    with app.extensions["ballot_engine"].connect() as conn:
        return conn.execute(select(*cols)).first()


def _mint(stored_key: bytes, round_ref: str) -> dict:
    """What a copy's holder would do: load the stored key and sign a ballot of their own."""
    private = serialization.load_der_private_key(stored_key, password=None)
    serial, prefix = bytes(range(blind_rsa.SERIAL_LEN)), bytes(blind_rsa.PREFIX_LEN)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=blind_rsa.S_LEN)
    sig = private.sign(prefix + blind_rsa.ballot_message(round_ref, serial), pss, hashes.SHA384())
    return {"prefix": b64url_encode(prefix), "round_ref": round_ref, "serial": serial.hex(),
            "signature": b64url_encode(sig)}


def test_a_database_copy_taken_during_the_vote_cannot_mint_ballots(app, api, tmp_path):
    s = setup_sitting(api, members=3)
    stored, round_id = _row(app, Round.blind_private_key, Round.id)
    assert stored
    with pytest.raises(ValueError):  # not a private key without the body's signing key
        _mint(stored, f"r{round_id}")
    settings = app.config["SETTINGS"]
    db = app.extensions["ballot_sessionmaker"]()
    try:
        clear = issuance.round_private_key(settings, s.body_id, db.get(Round, round_id))
    finally:
        db.close()
    # The key in clear is nowhere in the database's files, and a cast minted with it is genuine
    # (so the test's minting is right): the copy alone just does not have it.
    url = settings.database_url
    if url.startswith("sqlite"):
        path = Path(url.split("sqlite:///", 1)[1])
        for suffix in ("", "-wal"):
            if Path(f"{path}{suffix}").exists():
                shutil.copyfile(f"{path}{suffix}", tmp_path / f"copy{suffix}")
                assert clear not in (tmp_path / f"copy{suffix}").read_bytes()
    minted = _mint(clear, f"r{round_id}")
    status, _ = api.call("POST", "/api/terminal/cast", {**minted, "marks": {"motion": "for"},
                                                        "retry_id": tablet.new_retry_id()}, expect=(201,))
    assert status == 201


def test_a_wrapped_key_opens_only_for_its_round_and_its_body_key(app, api, tmp_path):
    s = setup_sitting(api, members=2)
    stored, round_id = _row(app, Round.blind_private_key, Round.id)
    body_key = keys.body_signing_key(app.config["SETTINGS"], s.body_id)
    with pytest.raises(key_wrap.UnwrapError):
        key_wrap.unwrap(body_key, issuance.WRAP_PURPOSE, stored, f"round {round_id + 1}".encode())
    other = keys.create_key(tmp_path, "other", "other-passphrase")
    with pytest.raises(key_wrap.UnwrapError):
        key_wrap.unwrap(other, issuance.WRAP_PURPOSE, stored, f"round {round_id}".encode())
    # A wrapped key altered in its row (its last byte flipped: setting it to 0 left one key in
    # 256 unchanged, and the test failed then): refused, nothing signed.
    with app.extensions["ballot_engine"].begin() as conn:
        conn.execute(update(Round).where(Round.id == round_id).values(blind_private_key=stored[:-1] + bytes([stored[-1] ^ 1])))
    status, body = api.call("POST", "/api/terminal/blind-sign",
                            {"round_ref": f"r{round_id}", "blinded_msg": b64url_encode(bytes(256))},
                            credential=s.creds[s.members[0]], expect=(409,))
    assert status == 409 and "signing key" in str(body)


def test_ballots_are_signed_by_two_app_instances_and_after_a_restart(app, api, settings_env, tmp_path):
    """Two app instances on one database and keys folder (as two nodes), each with its own
    instance folder, then a third after the key cache is cleared (a restart): each signs."""
    s = setup_sitting(api, members=4)

    def node(name: str):
        inst = tmp_path / name
        inst.mkdir()
        other = create_app({**settings_env, "BALLOT_INSTANCE_PATH": str(inst)})
        other.config["TESTING"] = True
        return other, Api.flask(other.test_client())

    second, api2 = node("node2")
    votes = [(api, s.members[0]), (api2, s.members[1])]
    keys.clear_cache()  # a restart: the body key is loaded (and the wrapping key derived) anew
    third, api3 = node("node3")
    votes += [(api3, s.members[2]), (api2, s.members[3])]
    try:
        for via, no in votes:
            ballot = blind_ballot(via, s.creds[no])
            via.call("POST", "/api/terminal/cast", {**ballot, "marks": {"motion": "for"},
                                                    "retry_id": tablet.new_retry_id()}, expect=(201,))
    finally:
        for other in (second, third):
            other.extensions["ballot_engine"].dispose()
