"""Sealed terminal tokens: only the terminal's credential opens them; tampering is detected."""
from __future__ import annotations

import time

import pytest

from ballot_service.crypto.sealing import SealError, credential_keypair, open_sealed, seal


def test_credential_keypair_is_deterministic():
    sk1, pub1 = credential_keypair("terminal-credential-abc")
    sk2, pub2 = credential_keypair("terminal-credential-abc")
    _, pub3 = credential_keypair("terminal-credential-abd")
    assert pub1 == pub2 != pub3
    assert len(pub1) == 32
    assert sk1.public_key().public_bytes_raw() == pub1


def test_seal_round_trip_and_randomised():
    sk, pub = credential_keypair("cred")
    msg = b'{"payload":{"serial":"00"},"sig":"x"}'
    a, b = seal(pub, msg), seal(pub, msg)
    assert a != b  # fresh ephemeral key and nonce each time
    assert msg not in a
    assert len(a) == 32 + 12 + len(msg) + 16
    assert open_sealed(sk, a) == msg == open_sealed(sk, b)


def test_tamper_detected_anywhere():
    sk, pub = credential_keypair("cred")
    blob = seal(pub, b"ballot token")
    for i in range(len(blob)):
        changed = bytearray(blob)
        changed[i] ^= 0x01
        with pytest.raises(SealError):
            open_sealed(sk, bytes(changed))
    with pytest.raises(SealError):
        open_sealed(sk, blob[:40])
    with pytest.raises(SealError):
        open_sealed(sk, blob + b"\x00")


def test_other_terminal_cannot_open():
    _, pub = credential_keypair("cred-a")
    other, _ = credential_keypair("cred-b")
    with pytest.raises(SealError):
        open_sealed(other, seal(pub, b"x"))


def test_bad_inputs():
    with pytest.raises(ValueError):
        seal(b"short", b"x")
    with pytest.raises(ValueError):
        credential_keypair("")


def test_sealing_3000_tokens_is_fast():
    sk, pub = credential_keypair("cred")
    token = b"x" * 260
    start = time.perf_counter()
    blobs = [seal(pub, token) for _ in range(3000)]
    elapsed = time.perf_counter() - start
    assert open_sealed(sk, blobs[-1]) == token
    assert elapsed < 1.5, f"sealing 3000 tokens took {elapsed:.2f}s"
