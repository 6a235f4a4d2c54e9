"""A hybrid round's paper serial (crypto/blind_ballots.paper_serial): the key derived from the
round's private key makes and recognises it; a tablet's random serial, or a paper serial of
another round, does not carry the mark; and the serial is 16 bytes like a tablet's."""
from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from ballot_service.crypto import blind_ballots as bb
from ballot_service.crypto import blind_rsa

DER = os.urandom(64)  # stands in for a round's private key bytes (the derivation only hashes them)


@given(st.integers(min_value=1, max_value=10**12))
def test_a_paper_serial_carries_its_rounds_mark_only(round_id):
    key = bb.paper_serial_key(DER, f"r{round_id}")
    serial = bb.paper_serial(key).hex()
    assert len(serial) == 2 * blind_rsa.SERIAL_LEN
    assert bb.is_paper_serial(key, serial)
    assert not bb.is_paper_serial(bb.paper_serial_key(DER, f"r{round_id + 1}"), serial)
    assert not bb.is_paper_serial(bb.paper_serial_key(DER + b"x", f"r{round_id}"), serial)


@given(st.binary(min_size=blind_rsa.SERIAL_LEN, max_size=blind_rsa.SERIAL_LEN))
def test_a_tablets_serial_does_not_pass_for_paper(serial):
    key = bb.paper_serial_key(DER, "r1")
    assert not bb.is_paper_serial(key, serial.hex())


@given(st.integers(min_value=0, max_value=2 ** 64 - 1))
def test_changing_a_paper_serial_loses_the_mark(flip):
    key = bb.paper_serial_key(DER, "r1")
    serial = bb.paper_serial(key)
    changed = (int.from_bytes(serial, "big") ^ (flip << 64 | flip) or 1).to_bytes(16, "big")
    if changed != serial:
        assert not bb.is_paper_serial(key, changed.hex())
