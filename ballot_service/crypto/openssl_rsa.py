"""The raw RSA private operation, s = c^d mod n (RFC 9474 BlindSign), by OpenSSL's libcrypto.

`cryptography` signs and decrypts only with padding; a blind signature needs the bare
operation on the client's blinded value. OpenSSL does it as RSA decryption with
RSA_NO_PADDING: CRT, constant time, with OpenSSL's own base blinding and check, and on this
machine's CPU about 3 times faster than GMP's powmod (benchmarks/bench_blind_sign.py: 0.3 ms
against 1.0 ms a signature). This module only calls it, through ctypes, on the libcrypto of
Python's own `_ssl` module (its symbols, so never a second OpenSSL), when that is OpenSSL 3;
the foreign call releases the GIL.

`raw_private(private, value)` returns the k-byte result, or None when OpenSSL cannot be used
here (then blind_rsa.py computes it with gmpy2, and a warning says so once). Keys are handed
to OpenSSL once (PKCS#1 DER) and kept by modulus while in use: a few at a time (one per open
round), each freed after IDLE_S unused (a sweeper thread runs while any is kept) or when its
round closes in this process (`forget`), as the round's key must not outlive the close
(issuance.forget_round_key). A key closed here is never kept again: a late request still
holding it (read before the close; its count is refused) signs with a copy freed at once.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections import OrderedDict

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger(__name__)

_EVP_PKEY_RSA = 6        # openssl/obj_mac.h NID_rsaEncryption
_RSA_NO_PADDING = 3      # openssl/rsa.h
_KEPT = 16               # keys held by OpenSSL at once (least recently used dropped)
IDLE_S = 60.0            # a key unused this long is freed (its round has likely closed elsewhere)
_CLOSED_KEPT = 4096      # moduli of rounds closed in this process, remembered so as never to keep them


def _load():
    """Python's _ssl module as a library (dlsym searches its libcrypto too), if it is OpenSSL 3."""
    try:
        import _ssl
        import ssl

        lib = ctypes.CDLL(_ssl.__file__)
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if ssl.OPENSSL_VERSION_INFO[0] < 3 or lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:
            log.warning("blind signatures use gmpy2: Python's ssl module is not on OpenSSL 3 (%s)",
                        ssl.OPENSSL_VERSION)
            return None
        p, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
        lib.d2i_PrivateKey.argtypes = [i, p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]
        lib.d2i_PrivateKey.restype = p
        lib.EVP_PKEY_up_ref.argtypes, lib.EVP_PKEY_up_ref.restype = [p], i
        lib.EVP_PKEY_free.argtypes, lib.EVP_PKEY_free.restype = [p], None
        lib.EVP_PKEY_CTX_new.argtypes, lib.EVP_PKEY_CTX_new.restype = [p, p], p
        lib.EVP_PKEY_CTX_free.argtypes, lib.EVP_PKEY_CTX_free.restype = [p], None
        lib.EVP_PKEY_decrypt_init.argtypes, lib.EVP_PKEY_decrypt_init.restype = [p], i
        lib.EVP_PKEY_CTX_set_rsa_padding.argtypes, lib.EVP_PKEY_CTX_set_rsa_padding.restype = [p, i], i
        lib.EVP_PKEY_decrypt.argtypes = [p, ctypes.c_char_p, ctypes.POINTER(sz), ctypes.c_char_p, sz]
        lib.EVP_PKEY_decrypt.restype = i
        lib.ERR_clear_error.argtypes, lib.ERR_clear_error.restype = [], None
        return lib
    except (ImportError, OSError, AttributeError) as exc:  # no usable libcrypto: gmpy2 does it
        log.warning("blind signatures use gmpy2: OpenSSL's libcrypto cannot be used here (%s)", exc)
        return None


_lib = _load()
_keys: OrderedDict[int, list] = OrderedDict()  # modulus -> [EVP_PKEY* (one reference held here), last used]
_keys_lock = threading.Lock()
_closed: OrderedDict[int, None] = OrderedDict()  # moduli of rounds closed here (under _keys_lock)
_sweeper: threading.Thread | None = None  # frees idle keys while any is kept (under _keys_lock)


def available() -> bool:
    return _lib is not None


def _drop(n: int) -> None:
    """Free the cache's reference to a key (under _keys_lock); a caller signing with it holds its own."""
    _lib.EVP_PKEY_free(_keys.pop(n)[0])


def _expire(now: float, keep: int | None = None) -> None:
    """Free the keys unused for IDLE_S (under _keys_lock)."""
    for old in [m for m, (_, used) in _keys.items() if now - used > IDLE_S and m != keep]:
        _drop(old)


def _sweep() -> None:
    """The sweeper thread: idle keys freed even when no other key is used; ends once none is kept."""
    while True:
        time.sleep(IDLE_S / 4)
        if not _sweep_once():
            return


def _sweep_once() -> bool:
    """Free the idle keys now; False (and the sweeper ends) once none is kept."""
    global _sweeper
    with _keys_lock:
        _expire(time.monotonic())
        if not _keys:
            _sweeper = None
            return False
        return True


def _after_fork() -> None:  # a forked worker starts its own sweeper (its parent's is not running here)
    global _keys_lock, _sweeper
    _keys_lock, _sweeper = threading.Lock(), None


def _pkey(private: rsa.RSAPrivateKey) -> int:
    """A new reference to the key's EVP_PKEY (the caller frees it), loaded once per modulus
    (a closed round's: loaded for this call only)."""
    global _sweeper
    n = private.public_key().public_numbers().n
    now = time.monotonic()
    with _keys_lock:
        _expire(now, keep=n)
        closed = n in _closed
        kept = _keys.get(n)
        if kept is not None and _lib.EVP_PKEY_up_ref(kept[0]) == 1:
            kept[1] = now
            _keys.move_to_end(n)
            return kept[0]
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    cursor = ctypes.c_char_p(der)
    pkey = _lib.d2i_PrivateKey(_EVP_PKEY_RSA, None, ctypes.byref(cursor), len(der))
    if not pkey:
        _lib.ERR_clear_error()
        raise RuntimeError("OpenSSL could not read the round's private key")
    if closed:
        return pkey  # the caller's reference is the only one: freed after this signature
    with _keys_lock:
        if n in _closed:  # closed while this thread loaded it
            return pkey
        if n in _keys:  # loaded meanwhile by another thread: replace it (it is freed once unused)
            _drop(n)
        _keys[n] = [pkey, now]
        while len(_keys) > _KEPT:
            _drop(next(iter(_keys)))
        if _sweeper is None:
            _sweeper = threading.Thread(target=_sweep, name="openssl-rsa-sweeper", daemon=True)
            _sweeper.start()
        if _lib.EVP_PKEY_up_ref(pkey) != 1:
            raise RuntimeError("OpenSSL could not take a reference to the round's private key")
        return pkey


def forget(public: rsa.RSAPublicKey) -> None:
    """Free this process's copy of a round's private key (its round closed)."""
    if _lib is None:
        return
    n = public.public_numbers().n
    with _keys_lock:
        _closed[n] = None
        while len(_closed) > _CLOSED_KEPT:
            _closed.popitem(last=False)
        if n in _keys:
            _drop(n)


def raw_private(private: rsa.RSAPrivateKey, value: bytes) -> bytes | None:
    """value^d mod n as k bytes (`value`: k bytes, below n: the caller checked), or None when
    OpenSSL is not available. Raises RuntimeError if OpenSSL fails (the server's fault)."""
    if _lib is None:
        return None
    pkey = _pkey(private)
    ctx = None
    try:
        ctx = _lib.EVP_PKEY_CTX_new(pkey, None)
        out = ctypes.create_string_buffer(len(value))
        size = ctypes.c_size_t(len(out))
        if not ctx or _lib.EVP_PKEY_decrypt_init(ctx) <= 0 \
                or _lib.EVP_PKEY_CTX_set_rsa_padding(ctx, _RSA_NO_PADDING) <= 0 \
                or _lib.EVP_PKEY_decrypt(ctx, out, ctypes.byref(size), value, len(value)) <= 0 \
                or size.value != len(value):
            _lib.ERR_clear_error()
            raise RuntimeError("OpenSSL refused the RSA private operation")
        return out.raw
    finally:
        if ctx:
            _lib.EVP_PKEY_CTX_free(ctx)
        _lib.EVP_PKEY_free(pkey)


os.register_at_fork(after_in_child=_after_fork)
