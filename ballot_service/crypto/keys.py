"""Signing keys under the keys directory (Settings.keys_dir, default top-level `keys/`).

One Ed25519 key per body, named `body-<body_id>`:

- `<name>.key.pem`: the private key, PKCS#8 PEM encrypted with its passphrase
  (cryptography's BestAvailableEncryption), file mode 0600. Never committed, never overwritten.

Each key can have its own passphrase (a township's secretariat need not know the city's):
passphrase_for looks in BALLOT_KEY_PASSPHRASE_<KEY NAME> (`BALLOT_KEY_PASSPHRASE_BODY_3` for
body-3), then in the file `passphrases/<key name>` of the instance folder (mode 0600, the
first line), then falls back to BALLOT_KEY_PASSPHRASE.
- `<name>.pub.pem`: the public key, SubjectPublicKeyInfo PEM; anyone may have it.

The fingerprint is short enough to read aloud and compare with a printed record: the
first 16 hex digits of sha256(raw 32-byte public key), in groups of four
(`ab12 cd34 ef56 7890`). An outside tool computes it with
`openssl pkey -pubin -in body-1.pub.pem -outform DER | tail -c 32 | sha256sum`.

Verification raises (`SignatureInvalid`); it never returns a boolean a caller could forget
to test.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import threading
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ballot_service.config import KEY_PASSPHRASE_VAR
from ballot_service.errors import BallotError, KeyFileError

PRIVATE_SUFFIX = ".key.pem"
PUBLIC_SUFFIX = ".pub.pem"
PASSPHRASE_DIR = "passphrases"  # in the instance folder: one file per key name, mode 0600
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class SignatureInvalid(BallotError):
    """A signature does not verify under the given public key."""

    status = 403
    error_type = "SignatureInvalid"


def body_key_name(body_id: int) -> str:
    return f"body-{int(body_id)}"


def body_public_key(keys_dir: Path, body_id: int) -> Ed25519PublicKey:
    """A body's public key from the keys folder (no passphrase needed)."""
    return load_public_key(public_path(keys_dir, body_key_name(body_id)))


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    """The public key as the PEM (SubjectPublicKeyInfo) written beside every private key."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def body_signing_key(settings, body_id: int) -> "SigningKey":
    """The signing key of a body, from the configured folder and its passphrase (the one way
    domain code gets it). `settings`: config.Settings."""
    return load_key(settings.keys_dir, body_key_name(body_id), body_passphrase(settings, body_id))


# The cast path's check of each body's key: (folder, body, passphrase settings) -> (the key
# and passphrase files' states when it was loaded, their paths, the key).
_checked: dict[tuple, tuple[tuple, tuple[str, str], "SigningKey"]] = {}


def _file_state(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode, st.st_uid


def checked_body_signing_key(settings, body_id: int) -> "SigningKey":
    """body_signing_key, for the cast path: the key loaded before if neither its file nor
    its passphrase file changed since (one stat each, on paths built once), else loaded again
    with every check. The same answer as body_signing_key, which built both paths and ran the
    passphrase and name checks on every cast (a fifth of a cast's work before the lock)."""
    at = (str(settings.keys_dir), int(body_id), settings.key_passphrase, settings.key_passphrases,
          str(settings.instance_path))
    hit = _checked.get(at)
    paths = hit[1] if hit is not None else (
        str(private_path(settings.keys_dir, body_key_name(body_id))),
        str(Path(settings.instance_path) / PASSPHRASE_DIR / body_key_name(body_id)))
    state = (_file_state(paths[0]), _file_state(paths[1]))
    if hit is not None and hit[0] == state and state[0] is not None:
        return hit[2]
    key = body_signing_key(settings, body_id)
    _checked[at] = (state, paths, key)
    return key


def body_passphrase(settings, body_id: int) -> str | None:
    return passphrase_for(settings, body_key_name(body_id))


def passphrase_variable(name: str) -> str:
    """The environment variable of one key's own passphrase: body-3 → BALLOT_KEY_PASSPHRASE_BODY_3."""
    return f"{KEY_PASSPHRASE_VAR}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"


def passphrase_for(settings, name: str) -> str | None:
    """The passphrase of key `name`: its own variable, else its file in the instance folder,
    else BALLOT_KEY_PASSPHRASE (None when there is none). A passphrase file others can read
    is refused, naming it relative to the instance folder."""
    own = dict(settings.key_passphrases).get(passphrase_variable(name)[len(KEY_PASSPHRASE_VAR) + 1:])
    if own:
        return own
    path = Path(settings.instance_path) / PASSPHRASE_DIR / name
    try:
        st = path.stat()
    except FileNotFoundError:
        return settings.key_passphrase
    shown = f"{PASSPHRASE_DIR}/{name}"
    if st.st_mode & 0o077 or st.st_uid != os.getuid():
        raise KeyFileError(f"the passphrase file {shown} of the instance folder must be this user's and mode "
                           f"0600 (it is {st.st_mode & 0o777:04o}): chmod 600 it", where=shown,
                           zh=f"实例目录中的口令文件 {shown} 须归本用户所有且权限为 0600（现为 {st.st_mode & 0o777:04o}）")
    lines = path.read_text(encoding="utf-8").splitlines()
    return (lines[0] if lines else "") or settings.key_passphrase


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    h = hashlib.sha256(raw).hexdigest()[:16]
    return " ".join(h[i:i + 4] for i in range(0, 16, 4))


class SigningKey:
    """A loaded private key. `sign` is cheap; loading (passphrase KDF) is cached per process."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey):
        self.name = name
        self._private_key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.public_pem: bytes = public_pem(self.public_key)
        self.fingerprint: str = fingerprint(self.public_key)
        self._derived: dict[str, bytes] = {}

    def sign(self, data: bytes) -> bytes:
        return self._private_key.sign(data)

    def derive_key(self, purpose: str) -> bytes:
        """32 bytes that only a holder of this unlocked key can compute: HKDF-SHA256 of the
        private key, labelled with `purpose` (crypto/key_wrap.py). Cached per purpose."""
        derived = self._derived.get(purpose)
        if derived is None:
            raw = self._private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                  serialization.NoEncryption())
            derived = self._derived[purpose] = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                                    info=f"ballot-service/{purpose}".encode()).derive(raw)
        return derived

    def __repr__(self) -> str:  # never show key material
        return f"<SigningKey {self.name} {self.fingerprint}>"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise KeyFileError(f"key name {name!r} is not valid: use letters, digits, '-', '_' or '.'",
                           where="name", zh=f"密钥名称 {name!r} 无效：只能使用字母、数字、“-”、“_”或“.”")


def private_path(keys_dir: Path, name: str) -> Path:
    return Path(keys_dir) / f"{name}{PRIVATE_SUFFIX}"


def public_path(keys_dir: Path, name: str) -> Path:
    return Path(keys_dir) / f"{name}{PUBLIC_SUFFIX}"


def _create_hint(name: str) -> str:
    m = re.fullmatch(r"body-(\d+)", name)
    if m:
        return f"create it with `ballot-service keys create {m.group(1)}`"
    return "create it with `ballot-service keys create BODY_ID`"


def create_key(keys_dir: Path, name: str, passphrase: str) -> SigningKey:
    """Generate an Ed25519 key and write `<name>.key.pem` (encrypted, 0600) and `<name>.pub.pem`.

    Refuses to overwrite an existing private key: a lost key cannot be replaced silently,
    since every ballot and record already signed names its fingerprint."""
    _check_name(name)
    if not passphrase:
        raise KeyFileError("no passphrase: set BALLOT_KEY_PASSPHRASE before creating a key",
                           where="BALLOT_KEY_PASSPHRASE", zh="未设置口令：请先设置 BALLOT_KEY_PASSPHRASE，再生成签名密钥")
    keys_dir = Path(keys_dir)
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    priv_path, pub_path = private_path(keys_dir, name), public_path(keys_dir, name)
    if priv_path.exists():
        raise KeyFileError(f"key {name} already exists at {priv_path}; refusing to overwrite it "
                           f"(move it away first if you really mean to replace it)", where=str(priv_path),
                           zh=f"签名密钥 {name} 已存在（{priv_path}），不予覆盖；确需更换，请先将其移走")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(passphrase.encode("utf-8")))
    try:
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key {name} already exists at {priv_path}; refusing to overwrite it",
                           where=str(priv_path), zh=f"签名密钥 {name} 已存在（{priv_path}），不予覆盖") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(priv_path, 0o600)  # in case the umask or filesystem widened it
    signing_key = SigningKey(name, key)
    tmp = pub_path.with_suffix(".tmp")
    tmp.write_bytes(signing_key.public_pem)
    os.replace(tmp, pub_path)
    return signing_key


_cache: dict[tuple, SigningKey] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
    _checked.clear()


# load_key runs for every cast (intake verifies with the body's key): keep its cache lookup
# to one stat() of the key file.
@functools.lru_cache(maxsize=16)
def _resolved(keys_dir: str) -> str:
    return str(Path(keys_dir).resolve())


@functools.lru_cache(maxsize=8)
def _passphrase_digest(passphrase: str) -> str:
    return hashlib.sha256(passphrase.encode("utf-8")).hexdigest()


def load_key(keys_dir: Path, name: str, passphrase: str | None) -> SigningKey:
    """Load a private key. Cached per (dir, name, passphrase, file version) so a hot path does
    not repeat the passphrase KDF; a wrong passphrase is never served from the cache."""
    _check_name(name)
    path = private_path(keys_dir, name)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"signing key {name} not found ({path.name} in the keys folder): {_create_hint(name)}",
                           where=path.name,
                           zh=f"找不到签名密钥 {name}（{path.name}）：请先为该机构生成签名密钥"
                              f"（命令行：ballot-service keys create 机构编号）") from None
    var = passphrase_variable(name)
    if not passphrase:
        raise KeyFileError(f"the passphrase for key {name} is not set: set {var} (or BALLOT_KEY_PASSPHRASE) "
                           f"to the passphrase used when the key was created", where=var,
                           zh=f"未设置签名密钥 {name} 的口令：请将 {var}（或 BALLOT_KEY_PASSPHRASE）设为生成该密钥时所用的口令")
    cache_key = (_resolved(str(keys_dir)), name, _passphrase_digest(passphrase),
                 st.st_mtime_ns, st.st_size, st.st_ino)
    with _cache_lock:
        cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    data = path.read_bytes()
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in data:
        raise KeyFileError(f"key file {path.name} is corrupted or not an encrypted private key: "
                           f"restore it from your backup", where=path.name,
                           zh=f"密钥文件 {path.name} 已损坏或不是加密的私钥：请从备份恢复")
    try:
        key = serialization.load_pem_private_key(data, passphrase.encode("utf-8"))
    except ValueError as exc:
        if "password" in str(exc).lower() or "decrypt" in str(exc).lower() or _whole_envelope(data):
            raise KeyFileError(f"wrong passphrase for key {name}: check {var} or BALLOT_KEY_PASSPHRASE "
                               f"(if it is right, the file {path.name} is damaged: restore it from your backup)",
                               where=var,
                               zh=f"签名密钥 {name} 的口令错误：请检查 {var} 或 BALLOT_KEY_PASSPHRASE"
                                  f"（如口令无误，则密钥文件 {path.name} 已损坏，请从备份恢复）") from None
        raise KeyFileError(f"key file {path.name} is corrupted ({exc.__class__.__name__}): restore it from "
                           f"your backup", where=path.name,
                           zh=f"密钥文件 {path.name} 已损坏（{exc.__class__.__name__}）：请从备份恢复") from None
    except TypeError:
        raise KeyFileError(f"key file {path.name} is not encrypted as expected: restore it from your backup",
                           where=path.name, zh=f"密钥文件 {path.name} 未按预期加密：请从备份恢复") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"key file {path.name} does not hold an Ed25519 key", where=path.name,
                           zh=f"密钥文件 {path.name} 中不是 Ed25519 密钥")
    signing_key = SigningKey(name, key)
    pub = public_path(keys_dir, name)
    if pub.exists():
        try:
            on_disk = load_public_key(pub)
        except KeyFileError:
            on_disk = None
        if on_disk is None or fingerprint(on_disk) != signing_key.fingerprint:
            raise KeyFileError(f"public key {pub.name} does not match private key {path.name}: restore the pair "
                               f"from your backup", where=pub.name,
                               zh=f"公钥 {pub.name} 与私钥 {path.name} 不匹配：请从备份恢复这对密钥")
    with _cache_lock:
        _cache[cache_key] = signing_key
    return signing_key


_ENCRYPTED_PEM = re.compile(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----(.+?)-----END ENCRYPTED PRIVATE KEY-----", re.S)


def _whole_envelope(data: bytes) -> bool:
    """Whether the file is still one whole encrypted PEM block: base64 of exactly one DER
    SEQUENCE (its EncryptedPrivateKeyInfo). Then a key that will not load after decryption is a
    wrong passphrase as likely as damage: PKCS#8's AES-CBC has no integrity check, and about one
    wrong passphrase in 256 still unpads, failing only at the key's parse (measured: 862 of
    217,314), which must not be reported as a corrupted file."""
    block = _ENCRYPTED_PEM.search(data)
    try:
        der = base64.b64decode(b"".join(block.group(1).split()), validate=True) if block else b""
    except ValueError:
        return False
    if len(der) < 2 or der[0] != 0x30:
        return False
    if der[1] < 0x80:
        return len(der) == 2 + der[1]
    width = der[1] & 0x7F
    return 0 < width <= 4 and len(der) == 2 + width + int.from_bytes(der[2:2 + width], "big")


def load_public_key(path_or_pem) -> Ed25519PublicKey:
    """Load a public key from a path, PEM bytes/str, or pass an Ed25519PublicKey through."""
    if isinstance(path_or_pem, Ed25519PublicKey):
        return path_or_pem
    if isinstance(path_or_pem, str) and "-----BEGIN" in path_or_pem:
        data, where = path_or_pem.encode("ascii", "replace"), "public key"
    elif isinstance(path_or_pem, (bytes, bytearray)):
        data, where = bytes(path_or_pem), "public key"
    else:
        p = Path(path_or_pem)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            hint = _create_hint(p.name[: -len(PUBLIC_SUFFIX)]) if p.name.endswith(PUBLIC_SUFFIX) else \
                "check the path"
            raise KeyFileError(f"public key not found at {p}: {hint}", where=str(p),
                               zh=f"找不到公钥 {p}：请检查路径；如该机构尚无签名密钥，请先生成") from None
        where = str(p)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{where} is not a valid PEM public key ({exc.__class__.__name__})",
                           where=where, zh=f"不是有效的 PEM 公钥（{where}，{exc.__class__.__name__}）") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{where} is not an Ed25519 public key", where=where, zh=f"不是 Ed25519 公钥（{where}）")
    return key


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    """Raise SignatureInvalid unless `signature` is a valid Ed25519 signature of `data`."""
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != 64:
        raise SignatureInvalid("signature is not 64 bytes")
    try:
        public_key.verify(bytes(signature), data)
    except InvalidSignature:
        raise SignatureInvalid("signature does not verify") from None
