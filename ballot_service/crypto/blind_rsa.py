"""RSA blind signatures, RSABSSA-SHA384-PSS-Randomized exactly as in RFC 9474.

One job: let a client get an RSA-PSS signature on a message the signer never sees, so that a
ballot the server signed for an eligible deputy cannot later be linked back to that deputy.
The server holds a fresh key per round (`generate_round_key`) and signs each blinded
message it is sent once (`blind_sign`); the client runs `prepare`, `blind` and `finalize`.
The browser half of the same protocol is ballot_service/static/blind_rsa.js.

Wire format (all values are bytes; integers big-endian, fixed length):

    prepared_msg = msg_prefix (32 random bytes) || msg        -- what is actually signed
    blinded_msg  = k bytes (k = modulus length, 256 for RSA-2048), client -> server
    blind_sig    = k bytes, server -> client
    sig          = k bytes, an ordinary RSASSA-PSS signature over prepared_msg with
                   SHA-384, MGF1-SHA-384 and a 48-byte salt (RFC 8017 section 8.1)

For ballots, msg = ballot_message(round_ref, serial):
    b"ballot-service/ballot/v1\\n" + round_ref + b"\\n" + hex(serial)   (serial: 16 bytes)
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Callable

import gmpy2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ballot_service.crypto import openssl_rsa

log = logging.getLogger(__name__)

__all__ = ["InvalidSignature", "generate_round_key", "public_key_pem", "public_key_der", "prepare",
           "blind", "blind_sign", "finalize", "verify", "ballot_message"]

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
PREFIX_LEN = 32   # RFC 9474 section 4.1, the "Randomized" preparation
H_LEN = 48        # SHA-384
S_LEN = 48        # salt length of the PSS variant (= H_LEN)

Rng = Callable[[int], bytes]
RSAKey = rsa.RSAPublicKey | rsa.RSAPrivateKey

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=S_LEN)
_ROUND_REF = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BALLOT_LABEL = b"ballot-service/ballot/v1\n"
SERIAL_LEN = 16


# ---- keys ---------------------------------------------------------------------------------

def generate_round_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key (e = 65537) for one round; never reused across rounds."""
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)


def _public(key: RSAKey) -> rsa.RSAPublicKey:
    return key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key


def public_key_pem(key: RSAKey) -> bytes:
    """SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") of the key's public half."""
    return _public(key).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_der(key: RSAKey) -> bytes:
    """SubjectPublicKeyInfo DER of the key's public half."""
    return _public(key).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _modulus(pub: rsa.RSAPublicKey) -> tuple[int, int, int]:
    nums = pub.public_numbers()
    return nums.n, nums.e, (nums.n.bit_length() + 7) // 8


# ---- EMSA-PSS-ENCODE (RFC 8017 section 9.1.1) with SHA-384 / MGF1-SHA-384 -----------------

def _mgf1(seed: bytes, length: int) -> bytes:
    out = b"".join(hashlib.sha384(seed + i.to_bytes(4, "big")).digest()
                   for i in range((length + H_LEN - 1) // H_LEN))
    return out[:length]


def _emsa_pss_encode(msg: bytes, em_bits: int, salt: bytes) -> bytes:
    em_len = (em_bits + 7) // 8
    if em_len < H_LEN + S_LEN + 2:
        raise ValueError("modulus too small for SHA-384 PSS with a 48-byte salt")
    m_hash = hashlib.sha384(msg).digest()
    h = hashlib.sha384(b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - S_LEN - H_LEN - 2) + b"\x01" + salt
    # db XOR mask as one integer: a byte at a time took 20 of the blinding's 165 us
    mask = _mgf1(h, len(db))
    masked = bytearray((int.from_bytes(db, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(db), "big"))
    # Clear the bits above em_bits so the encoded integer is below the modulus.
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    return bytes(masked) + h + b"\xbc"


# ---- the protocol (RFC 9474 section 4) ----------------------------------------------------

def prepare(msg: bytes, *, prefix: bytes | None = None, rng: Rng = os.urandom) -> bytes:
    """msg_prefix || msg with a fresh 32-byte random prefix (`prefix` is a hook for tests)."""
    if prefix is None:
        prefix = rng(PREFIX_LEN)
    if len(prefix) != PREFIX_LEN:
        raise ValueError(f"the message prefix must be {PREFIX_LEN} bytes")
    return bytes(prefix) + bytes(msg)


def _random_below(n: int, rng: Rng) -> int:
    """Uniform integer in [1, n), by rejection (RFC 9474 random_integer_uniform)."""
    k, extra = (n.bit_length() + 7) // 8, 8 * ((n.bit_length() + 7) // 8) - n.bit_length()
    while True:
        x = int.from_bytes(rng(k), "big") >> extra
        if 0 < x < n:
            return x


def blind(pub: rsa.RSAPublicKey, prepared_msg: bytes, *, rng: Rng = os.urandom,
          salt: bytes | None = None, inv: int | None = None) -> tuple[bytes, bytes]:
    """Client: (blinded_msg, inv), both k bytes. Keep inv secret until `finalize`.

    `salt` and `inv` fix the PSS salt and the blinding inverse; they exist only so the RFC test
    vector can be reproduced. In use, leave them out: both then come from `rng`."""
    n, e, k = _modulus(_public(pub))
    if salt is None:
        salt = rng(S_LEN)
    if len(salt) != S_LEN:
        raise ValueError(f"the PSS salt must be {S_LEN} bytes")
    m = gmpy2.mpz(int.from_bytes(_emsa_pss_encode(prepared_msg, n.bit_length() - 1, salt), "big"))
    # A message sharing a factor with n would reveal that factor; the RFC refuses it.
    if gmpy2.gcd(m, n) != 1:
        raise ValueError("encoded message is not invertible modulo n")
    if inv is None:
        r = _random_below(n, rng)
        inv = int(gmpy2.invert(r, n))
    else:
        if not 0 < inv < n or gmpy2.gcd(inv, n) != 1:
            raise ValueError("blinding inverse must be invertible modulo n")
        r = int(gmpy2.invert(inv, n))
    z = int(m * gmpy2.powmod(r, e, n) % n)  # in gmpy2: with Python's integers this product took 16 us
    return z.to_bytes(k, "big"), inv.to_bytes(k, "big")


def blind_sign(private: rsa.RSAPrivateKey, blinded_msg: bytes, *, rng: Rng = os.urandom) -> bytes:
    """Server: the raw RSA private operation on a blinded message (RFC 9474 BlindSign).

    By OpenSSL (crypto/openssl_rsa.py: constant time, blinded, about 3 times faster), or where no
    usable libcrypto is found by CRT with gmpy2.powmod (cryptography exposes no raw RSA private
    operation). Either result is checked with the public exponent before it leaves, so a fault
    in the CRT arithmetic can never hand out a value that leaks a factor of n."""
    pub = private.public_key().public_numbers()
    n, e = pub.n, pub.e
    k = (n.bit_length() + 7) // 8
    if len(blinded_msg) != k:
        raise ValueError(f"blinded message must be {k} bytes")
    c = int.from_bytes(blinded_msg, "big")
    if c >= n:
        raise ValueError("blinded message is not below the modulus")
    try:
        raw = openssl_rsa.raw_private(private, bytes(blinded_msg))
    except RuntimeError:  # never expected: the same value by gmpy2, and a trace for the operator
        log.exception("OpenSSL's RSA private operation failed; signing with gmpy2")
        raw = None
    s = gmpy2.mpz(int.from_bytes(raw, "big")) if raw is not None else _crt_private(private, c, n, e, rng)
    if gmpy2.powmod(s, e, n) != c:
        raise ArithmeticError("RSA private operation failed its public-exponent check")
    return int(s).to_bytes(k, "big")


def forget_private(public: rsa.RSAPublicKey) -> None:
    """The round closed: drop this process's OpenSSL copy of its private key (openssl_rsa.py)."""
    openssl_rsa.forget(public)


def _crt_private(private: rsa.RSAPrivateKey, c: int, n: int, e: int, rng: Rng):
    """c^d mod n by CRT with gmpy2 (blind_sign where OpenSSL cannot do it)."""
    priv = private.private_numbers()
    # Base blinding: gmpy2.powmod is not constant-time, so the exponentiation works on
    # c * b^e for a random b the caller never sees, and the timing says nothing about c.
    b = _random_below(n, rng)
    cb = gmpy2.mpz(c) * gmpy2.powmod(b, e, n) % n
    s1 = gmpy2.powmod(cb, priv.dmp1, priv.p)
    s2 = gmpy2.powmod(cb, priv.dmq1, priv.q)
    return (s2 + priv.q * (priv.iqmp * (s1 - s2) % priv.p)) * gmpy2.invert(b, n) % n


def finalize(pub: rsa.RSAPublicKey, prepared_msg: bytes, blind_sig: bytes, inv: bytes) -> bytes:
    """Client: unblind and return the signature; raises InvalidSignature if it does not verify."""
    pub = _public(pub)
    n, _, k = _modulus(pub)
    if len(blind_sig) != k or len(inv) != k:
        raise ValueError(f"blind signature and inverse must be {k} bytes")
    s = int(gmpy2.mpz(int.from_bytes(blind_sig, "big")) * int.from_bytes(inv, "big") % n)
    sig = s.to_bytes(k, "big")
    verify(pub, prepared_msg, sig)
    return sig


def sign(private: rsa.RSAPrivateKey, prepared_msg: bytes) -> bytes:
    """An ordinary RSASSA-PSS signature (as `verify` checks), made without blinding: a hybrid
    vote's paper ballot, signed by the round's key so that it looks like a tablet's ballot."""
    sig = private.sign(bytes(prepared_msg), _PSS, hashes.SHA384())
    verify(private.public_key(), prepared_msg, sig)
    return sig


def verify(pub: rsa.RSAPublicKey, prepared_msg: bytes, sig: bytes) -> None:
    """Ordinary RSASSA-PSS verification (SHA-384, MGF1-SHA-384, salt 48) by `cryptography`.

    Returns nothing; raises cryptography.exceptions.InvalidSignature when the signature is bad,
    so a forgotten check can never read as success."""
    _public(pub).verify(bytes(sig), bytes(prepared_msg), _PSS, hashes.SHA384())


# ---- ballot messages -----------------------------------------------------------------------

def ballot_message(round_ref: str, serial: bytes) -> bytes:
    """The message a ballot's signature covers; it names the round so a ballot signed for one
    round never counts in another."""
    if not isinstance(round_ref, str) or not _ROUND_REF.fullmatch(round_ref):
        raise ValueError("round_ref must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    if not isinstance(serial, (bytes, bytearray)) or len(serial) != SERIAL_LEN:
        raise ValueError(f"serial must be exactly {SERIAL_LEN} bytes")
    return _BALLOT_LABEL + round_ref.encode("ascii") + b"\n" + bytes(serial).hex().encode("ascii")
