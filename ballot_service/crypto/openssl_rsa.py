"""The raw RSA private operation, s = c^d mod n (RFC 9474 BlindSign), by OpenSSL's libcrypto.

`cryptography` signs and decrypts only with padding; a blind signature needs the bare
operation on the client's blinded value. OpenSSL does it as RSA decryption with
RSA_NO_PADDING: CRT, constant time, with OpenSSL's own base blinding, and on this machine's
CPU (AVX-512) 4-5 times faster than GMP's powmod (benchmarks/bench_blind_sign.py: ~0.3 ms
against ~1.3 ms a signature). This module only calls it, through ctypes, on the libcrypto
that Python's own `ssl` module loaded (OpenSSL 3); the foreign call releases the GIL.

`raw_private(private, value)` returns the k-byte result, or None when no usable libcrypto is
found (then blind_rsa.py computes it with gmpy2, as before). Keys are handed to OpenSSL once
(PKCS#1 DER) and kept by modulus, a few at a time (one per open round)."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections import OrderedDict

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger(__name__)

_EVP_PKEY_RSA = 6        # openssl/obj_mac.h NID_rsaEncryption
_RSA_NO_PADDING = 3      # openssl/rsa.h
_KEPT = 16               # keys held by OpenSSL at once (least recently used dropped)


def _libcrypto_path() -> str | None:
    """The libcrypto Python's ssl module uses (so no second OpenSSL is loaded), else the system's."""
    try:
        import ssl  # noqa: F401  (loads libcrypto into this process)

        with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
            for line in maps:
                if "/libcrypto.so" in line:
                    return line.split()[-1]
    except OSError:
        pass
    return ctypes.util.find_library("crypto")


def _load():
    path = _libcrypto_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() < 0x30000000:  # EVP_PKEY_CTX_set_rsa_padding is a function from 3.0
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
    except (OSError, AttributeError) as exc:  # not a libcrypto we can use: gmpy2 does it
        log.info("OpenSSL's libcrypto (%s) cannot be used for blind signatures: %s", path, exc)
        return None


_lib = _load()
_keys: OrderedDict[int, int] = OrderedDict()  # modulus -> EVP_PKEY* (one reference held here)
_keys_lock = threading.Lock()


def available() -> bool:
    return _lib is not None


def _pkey(private: rsa.RSAPrivateKey) -> int:
    """A new reference to the key's EVP_PKEY (the caller frees it), loaded once per modulus."""
    n = private.public_key().public_numbers().n
    with _keys_lock:
        pkey = _keys.get(n)
        if pkey is not None:
            _keys.move_to_end(n)
            _lib.EVP_PKEY_up_ref(pkey)
            return pkey
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    cursor = ctypes.c_char_p(der)
    pkey = _lib.d2i_PrivateKey(_EVP_PKEY_RSA, None, ctypes.byref(cursor), len(der))
    if not pkey:
        _lib.ERR_clear_error()
        raise ValueError("OpenSSL could not read the round's private key")
    with _keys_lock:
        if n in _keys:  # another thread loaded it meanwhile: keep theirs
            _lib.EVP_PKEY_free(pkey)
            pkey = _keys[n]
        else:
            _keys[n] = pkey
            while len(_keys) > _KEPT:
                _lib.EVP_PKEY_free(_keys.popitem(last=False)[1])
        _lib.EVP_PKEY_up_ref(pkey)
        return pkey


def raw_private(private: rsa.RSAPrivateKey, value: bytes) -> bytes | None:
    """value^d mod n as k bytes (`value`: k bytes, below n: the caller checked), or None when
    OpenSSL is not available. Raises ValueError if OpenSSL refuses."""
    if _lib is None:
        return None
    pkey = _pkey(private)
    ctx = _lib.EVP_PKEY_CTX_new(pkey, None)
    try:
        out = ctypes.create_string_buffer(len(value))
        size = ctypes.c_size_t(len(out))
        if not ctx or _lib.EVP_PKEY_decrypt_init(ctx) <= 0 \
                or _lib.EVP_PKEY_CTX_set_rsa_padding(ctx, _RSA_NO_PADDING) <= 0 \
                or _lib.EVP_PKEY_decrypt(ctx, out, ctypes.byref(size), value, len(value)) <= 0 \
                or size.value != len(value):
            _lib.ERR_clear_error()
            raise ValueError("OpenSSL refused the RSA private operation")
        return out.raw
    finally:
        if ctx:
            _lib.EVP_PKEY_CTX_free(ctx)
        _lib.EVP_PKEY_free(pkey)
