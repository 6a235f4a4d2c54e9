"""crypto.blind_rsa: the RFC 9474 test vector, round trips, OpenSSL's view of the final
signature, refusals, and properties (any message round-trips; rounds do not mix)."""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballot_service.crypto import blind_rsa as br
from ballot_service.crypto import openssl_rsa

VECTOR_FILE = Path(__file__).parent / "data" / "rfc9474_sha384_pss_randomized.json"


def rfc_vector() -> dict:
    raw = json.loads(VECTOR_FILE.read_text())
    return {k: bytes.fromhex(v) for k, v in raw.items() if k != "source"}


def vector_key(v: dict) -> rsa.RSAPrivateKey:
    p, q, e, d = (int.from_bytes(v[k], "big") for k in ("p", "q", "e", "d"))
    return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
                                 rsa.RSAPublicNumbers(e, p * q)).private_key()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return br.generate_round_key()


@pytest.fixture(params=["openssl", "gmpy2"])
def engine(request, monkeypatch) -> str:
    """blind_sign's private operation: OpenSSL's (crypto/openssl_rsa.py), or gmpy2's CRT, the
    fallback where no usable libcrypto is found."""
    if request.param == "openssl" and not openssl_rsa.available():
        pytest.skip("no usable OpenSSL libcrypto in this process")
    if request.param == "gmpy2":
        monkeypatch.setattr(openssl_rsa, "raw_private", lambda private, value: None)
    return request.param


def sign_round_trip(key, msg: bytes) -> tuple[bytes, bytes]:
    """The whole protocol: client prepares and blinds, server signs, client finalizes."""
    pub = key.public_key()
    prepared = br.prepare(msg)
    blinded, inv = br.blind(pub, prepared)
    return prepared, br.finalize(pub, prepared, br.blind_sign(key, blinded), inv)


# ---- RFC 9474 Appendix A: RSABSSA-SHA384-PSS-Randomized ------------------------------------

def test_rfc9474_vector_reproduced_exactly(engine):
    v = rfc_vector()
    priv = vector_key(v)
    pub = priv.public_key()
    n = pub.public_numbers().n
    assert n == int.from_bytes(v["n"], "big")

    prepared = br.prepare(v["msg"], prefix=v["msg_prefix"])
    assert prepared == v["prepared_msg"]
    assert br._emsa_pss_encode(prepared, n.bit_length() - 1, v["salt"]) == v["encoded_msg"]

    blinded, inv = br.blind(pub, prepared, salt=v["salt"], inv=int.from_bytes(v["inv"], "big"))
    assert blinded == v["blinded_msg"]
    assert inv == v["inv"]

    blind_sig = br.blind_sign(priv, blinded)
    assert blind_sig == v["blind_sig"]

    sig = br.finalize(pub, prepared, blind_sig, inv)
    assert sig == v["sig"]
    assert br.verify(pub, prepared, sig) is None


def test_rfc9474_vector_signature_fails_for_the_unprepared_message():
    # The prefix is part of what is signed: the bare msg does not verify.
    v = rfc_vector()
    with pytest.raises(InvalidSignature):
        br.verify(vector_key(v).public_key(), v["msg"], v["sig"])


# ---- keys and round trips ------------------------------------------------------------------

def test_round_key_shape(key):
    nums = key.public_key().public_numbers()
    assert key.key_size == 2048 and nums.e == 65537
    pem, der = br.public_key_pem(key), br.public_key_der(key.public_key())
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert serialization.load_pem_public_key(pem).public_numbers() == nums
    assert serialization.load_der_public_key(der).public_numbers() == nums


def test_fresh_keys_differ():
    assert br.generate_round_key().public_key().public_numbers().n != \
        br.generate_round_key().public_key().public_numbers().n


def test_round_trip_with_fresh_key(key):
    msg = br.ballot_message("r-2026-12-02.7", bytes(range(16)))
    prepared, sig = sign_round_trip(key, msg)
    assert prepared[32:] == msg and len(prepared) == 32 + len(msg)
    assert len(sig) == 256
    br.verify(key.public_key(), prepared, sig)


def test_prepare_and_blind_are_randomized(key):
    # Two ballots with the same serial still look unrelated to the signer.
    pub = key.public_key()
    p1, p2 = br.prepare(b"same"), br.prepare(b"same")
    assert p1 != p2 and p1[32:] == p2[32:] == b"same"
    b1, i1 = br.blind(pub, p1)
    b2, i2 = br.blind(pub, p1)
    assert b1 != b2 and i1 != i2


def test_signature_of_another_round_key_does_not_verify(key):
    prepared, sig = sign_round_trip(key, b"ballot")
    other = br.generate_round_key()
    with pytest.raises(InvalidSignature):
        br.verify(other.public_key(), prepared, sig)


# ---- OpenSSL accepts the finalized signature as plain RSA-PSS ------------------------------

@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_finalized_signature(key, tmp_path):
    prepared, sig = sign_round_trip(key, br.ballot_message("round-1", b"\x07" * 16))
    (tmp_path / "pub.pem").write_bytes(br.public_key_pem(key))
    (tmp_path / "msg").write_bytes(prepared)
    (tmp_path / "sig").write_bytes(sig)
    cmd = ["openssl", "dgst", "-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:48",
           "-sigopt", "rsa_mgf1_md:sha384", "-verify", str(tmp_path / "pub.pem"), "-signature", str(tmp_path / "sig")]
    ok = subprocess.run([*cmd, str(tmp_path / "msg")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Verified OK" in ok.stdout
    # ... and refuses it for any other message.
    (tmp_path / "msg2").write_bytes(prepared[:-1] + bytes([prepared[-1] ^ 1]))
    bad = subprocess.run([*cmd, str(tmp_path / "msg2")], capture_output=True, text=True)
    assert bad.returncode != 0


# ---- refusals ------------------------------------------------------------------------------

def test_tampered_message_or_signature_raises(key):
    pub = key.public_key()
    prepared, sig = sign_round_trip(key, b"ballot")
    with pytest.raises(InvalidSignature):
        br.verify(pub, prepared + b"x", sig)
    with pytest.raises(InvalidSignature):
        br.verify(pub, b"\x00" + prepared[1:], sig)
    with pytest.raises(InvalidSignature):
        br.verify(pub, prepared, sig[:-1] + bytes([sig[-1] ^ 1]))
    with pytest.raises(InvalidSignature):
        br.verify(pub, prepared, sig[:-1])


def test_finalize_raises_on_a_bad_blind_signature(key):
    pub = key.public_key()
    prepared = br.prepare(b"ballot")
    blinded, inv = br.blind(pub, prepared)
    blind_sig = br.blind_sign(key, blinded)
    with pytest.raises(InvalidSignature):
        br.finalize(pub, prepared, blind_sig[:-1] + bytes([blind_sig[-1] ^ 1]), inv)
    with pytest.raises(InvalidSignature):
        br.finalize(pub, prepared + b"!", blind_sig, inv)
    # A blind signature from another round's key is refused too (as not verifying, or as a
    # value that is not even below this key's modulus: which one depends on the two moduli).
    other = br.generate_round_key()
    other_blinded, _ = br.blind(other.public_key(), prepared)
    with pytest.raises((InvalidSignature, ValueError)):
        br.finalize(pub, prepared, br.blind_sign(other, other_blinded), inv)


def test_blinded_message_not_below_modulus_refused(key):
    n = key.public_key().public_numbers().n
    for value in (n, n + 1, 2 ** 2048 - 1):
        with pytest.raises(ValueError, match="below the modulus"):
            br.blind_sign(key, value.to_bytes(256, "big"))
    br.blind_sign(key, (n - 1).to_bytes(256, "big"))


def test_blinded_message_of_wrong_length_refused(key):
    with pytest.raises(ValueError, match="256 bytes"):
        br.blind_sign(key, b"\x01" * 255)
    with pytest.raises(ValueError, match="256 bytes"):
        br.blind_sign(key, b"\x00" + b"\x01" * 256)


class _FaultyGmpy:
    """gmpy2 whose exponentiation modulo p returns a wrong value: a CRT fault."""

    def __init__(self, real, p):
        self._real, self._p = real, p

    def __getattr__(self, name):
        return getattr(self._real, name)

    def powmod(self, x, y, m):
        r = self._real.powmod(x, y, m)
        return r + 1 if m == self._p else r


def test_blind_sign_checks_its_result_with_public_exponent(key, monkeypatch):
    # A faulty CRT half would leak a factor of n (Bellcore attack); it must never leave.
    blinded, _ = br.blind(key.public_key(), br.prepare(b"ballot"))
    monkeypatch.setattr(openssl_rsa, "raw_private", lambda private, value: None)  # gmpy2's CRT
    monkeypatch.setattr(br, "gmpy2", _FaultyGmpy(br.gmpy2, key.private_numbers().p))
    with pytest.raises(ArithmeticError):
        br.blind_sign(key, blinded)


def test_blind_sign_checks_openssls_result_too(key, monkeypatch):
    blinded, _ = br.blind(key.public_key(), br.prepare(b"ballot"))
    right = br.blind_sign(key, blinded)
    wrong = (int.from_bytes(right, "big") + 1).to_bytes(len(right), "big")
    monkeypatch.setattr(openssl_rsa, "raw_private", lambda private, value: wrong)
    with pytest.raises(ArithmeticError):
        br.blind_sign(key, blinded)


def test_openssl_is_used_where_python_links_openssl_3():
    # The fast path must not silently fall back on the machines this service runs on.
    if ssl.OPENSSL_VERSION_INFO[0] < 3:
        pytest.skip("Python's ssl module is not on OpenSSL 3")
    assert openssl_rsa.available()
    assert openssl_rsa._lib.OpenSSL_version_num() == ssl.OPENSSL_VERSION_NUMBER  # the very same library


def test_a_failing_openssl_falls_back_to_gmpy2(key, monkeypatch):
    # OpenSSL failing on a good key is the server's fault: the ballot is still signed (by gmpy2).
    def broken(private, value):
        raise RuntimeError("OpenSSL refused the RSA private operation")

    blinded, _ = br.blind(key.public_key(), br.prepare(b"ballot"))
    right = br.blind_sign(key, blinded)
    monkeypatch.setattr(openssl_rsa, "raw_private", broken)
    assert br.blind_sign(key, blinded) == right


def test_a_closed_rounds_key_leaves_openssl(monkeypatch):
    # The round's private key must not outlive its close: forgotten at the close in this
    # process, and after IDLE_S unused in any other (whose cache the close cannot reach).
    if not openssl_rsa.available():
        pytest.skip("no usable OpenSSL libcrypto in this process")
    first, second = br.generate_round_key(), br.generate_round_key()
    for k in (first, second):
        br.blind_sign(k, br.blind(k.public_key(), br.prepare(b"ballot"))[0])
    n_first, n_second = (k.public_key().public_numbers().n for k in (first, second))
    assert {n_first, n_second} <= set(openssl_rsa._keys)
    br.forget_private(first.public_key())
    assert n_first not in openssl_rsa._keys and n_second in openssl_rsa._keys
    # A late request still holding the closed round's key (read before the close) signs with a
    # copy freed at once: the key is not kept again.
    blinded, inv = br.blind(first.public_key(), prepared := br.prepare(b"late"))
    br.verify(first.public_key(), prepared, br.finalize(first.public_key(), prepared, br.blind_sign(first, blinded), inv))
    assert n_first not in openssl_rsa._keys
    # Idle keys are freed by the sweeper thread, with no other signature needed.
    assert openssl_rsa._sweeper is not None and openssl_rsa._sweeper.is_alive()
    clock = [openssl_rsa.time.monotonic()]
    monkeypatch.setattr(openssl_rsa.time, "monotonic", lambda: clock[0])
    clock[0] += openssl_rsa.IDLE_S + 1
    openssl_rsa._sweep_once()  # what the sweeper does every IDLE_S / 4
    assert n_second not in openssl_rsa._keys


def test_openssl_and_gmpy2_agree_with_the_textbook_operation(key, monkeypatch):
    if not openssl_rsa.available():
        pytest.skip("no usable OpenSSL libcrypto in this process")
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    for _ in range(20):
        blinded, _ = br.blind(key.public_key(), br.prepare(b"ballot"))
        by_openssl = openssl_rsa.raw_private(key, blinded)
        by_gmpy2 = br._crt_private(key, int.from_bytes(blinded, "big"), n, numbers.public_numbers.e, os.urandom)
        assert int.from_bytes(by_openssl, "big") == int(by_gmpy2) == pow(int.from_bytes(blinded, "big"), d, n)


def test_openssl_keys_dropped_and_loaded_again_sign_alike(monkeypatch):
    # More keys than OpenSSL keeps at once (one per open round, a few): the oldest is freed and
    # loaded again when asked for; from several threads at once, every signature still verifies.
    if not openssl_rsa.available():
        pytest.skip("no usable OpenSSL libcrypto in this process")
    monkeypatch.setattr(openssl_rsa, "_KEPT", 2)
    keys = [br.generate_round_key() for _ in range(3)]

    def round_trip(i: int) -> bool:
        k = keys[i % 3]
        prepared = br.prepare(b"ballot %d" % i)
        blinded, inv = br.blind(k.public_key(), prepared)
        return br.verify(k.public_key(), prepared, br.finalize(k.public_key(), prepared, br.blind_sign(k, blinded),
                                                             inv)) is None

    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(round_trip, range(60)))
    assert len(openssl_rsa._keys) <= 2


def test_blind_hooks_validated(key):
    pub = key.public_key()
    with pytest.raises(ValueError):
        br.blind(pub, b"m", salt=b"short")
    with pytest.raises(ValueError):
        br.blind(pub, b"m", inv=0)
    with pytest.raises(ValueError):
        br.prepare(b"m", prefix=b"\x00" * 31)


# ---- ballot_message ------------------------------------------------------------------------

def test_ballot_message_format():
    serial = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert br.ballot_message("s14.3_item-2.r1", serial) == \
        b"ballot-service/ballot/v1\ns14.3_item-2.r1\n00112233445566778899aabbccddeeff"
    assert br.ballot_message("a" * 64, serial).count(b"\n") == 2


@pytest.mark.parametrize("round_ref", ["", "a" * 65, "round 1", "r/1", "r\n1", "第1轮", "r1\n", None, b"r1"])
def test_ballot_message_refuses_bad_round_ref(round_ref):
    with pytest.raises(ValueError, match="round_ref"):
        br.ballot_message(round_ref, b"\x00" * 16)


@pytest.mark.parametrize("serial", [b"", b"\x00" * 15, b"\x00" * 17, "00" * 16, None])
def test_ballot_message_refuses_bad_serial(serial):
    with pytest.raises(ValueError, match="serial"):
        br.ballot_message("r1", serial)


# ---- properties ----------------------------------------------------------------------------

ROUND_REFS = st.from_regex(r"\A[A-Za-z0-9._-]{1,64}\Z")
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(msg=st.binary(max_size=2048))
def test_any_message_round_trips(key, msg):
    prepared, sig = sign_round_trip(key, msg)
    br.verify(key.public_key(), prepared, sig)


@PROPERTY
@given(round_a=ROUND_REFS, round_b=ROUND_REFS, serial=st.binary(min_size=16, max_size=16))
def test_signature_for_one_round_never_verifies_for_another(key, round_a, round_b, serial):
    if round_a == round_b:
        round_b = round_b[:-1] + ("x" if round_b[-1] != "x" else "y")
    prepared_a, sig = sign_round_trip(key, br.ballot_message(round_a, serial))
    prefix = prepared_a[:32]
    # Same serial, same prefix, other round: the signature must not carry over.
    with pytest.raises(InvalidSignature):
        br.verify(key.public_key(), prefix + br.ballot_message(round_b, serial), sig)
