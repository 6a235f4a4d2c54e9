"""Checks 1 and 2: the folder holds exactly the files its manifest lists, unchanged, and its
public keys are well formed and, when the auditor pins a key, that key."""
from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ballot_service.bundle import layout
from ballot_service.bundle.encoding import sha256_file
from ballot_service.bundle.errors import BundleInvalid, fail
from ballot_service.bundle.readers import public_key_names, read_fingerprints, read_manifest, read_public_key
from ballot_service.crypto import keys as keys_mod
from ballot_service.formats.encoding import b64url_decode


@dataclass
class Keys:
    fps: dict[str, str]  # key name -> fingerprint, as keys/fingerprints.json says
    by_name: dict[str, Ed25519PublicKey]
    by_fp: dict[str, Ed25519PublicKey]


def parse_key_arg(key) -> set[str]:
    """--key: a public key PEM path (or PEM text), or a fingerprint; several allowed."""
    if key is None:
        return set()
    items = [key] if isinstance(key, (str, Path)) else list(key)
    out = set()
    for k in items:
        s = str(k)
        if "-----BEGIN" in s or Path(s).is_file():
            out.add(keys_mod.fingerprint(keys_mod.load_public_key(s if "-----BEGIN" in s else Path(s))))
            continue
        hexes = re.sub(r"[\s:]", "", s).lower()
        if not re.fullmatch(r"[0-9a-f]{16}", hexes):
            raise BundleInvalid(f"--key {s!r} is neither a public key file nor a 16-hex-digit fingerprint",
                                where="--key")
        out.add(" ".join(hexes[i:i + 4] for i in range(0, 16, 4)))
    return out


def signature_ok(pub: Ed25519PublicKey, signature_text, message: bytes) -> bool:
    """Whether a base64url signature in the bundle verifies; any malformed text does not."""
    try:
        pub.verify(b64url_decode(signature_text), message)
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False
    return True


def check_manifest(b: Path) -> None:
    """1. Every file in the folder is in manifest.json, every file listed is present, and each
    has the sha256 listed."""
    files = read_manifest(b)
    present = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    present = [p for p in present if p != layout.MANIFEST]
    for rel in present:
        if rel not in files:
            fail(f"{rel} is in the folder but not in manifest.json: a file was added", rel)
    for rel, digest in files.items():
        if not (b / rel).is_file():
            fail(f"{rel} is listed in manifest.json but missing from the folder", rel)
        if sha256_file(b / rel) != digest:
            fail(f"{rel} does not match its sha256 in manifest.json: the file was changed", rel)


def check_keys(b: Path, pinned: set[str]) -> Keys:
    """2. keys/ holds exactly the keys fingerprints.json names, each with that fingerprint; with
    --key, every one of them is a pinned key."""
    fps = read_fingerprints(b)
    if pinned and not fps:
        fail("the bundle holds no key, so nothing in it is signed by the key you gave", "--key")
    if public_key_names(b) != set(fps):
        fail("keys/ holds other public keys than keys/fingerprints.json names", "keys/")
    by_name: dict[str, Ed25519PublicKey] = {}
    by_fp: dict[str, Ed25519PublicKey] = {}
    for name, fp in fps.items():
        pub = read_public_key(b, name)
        if keys_mod.fingerprint(pub) != fp:
            fail(f"{layout.key_file(name)} has fingerprint {keys_mod.fingerprint(pub)}, not {fp} as "
                 f"keys/fingerprints.json says", layout.key_file(name))
        by_name[name], by_fp[fp] = pub, pub
    if pinned:
        for name, fp in fps.items():
            if fp not in pinned:
                fail(f"the bundle's key {name} has fingerprint {fp}, which is not the key you gave "
                     f"({', '.join(sorted(pinned))}): the bundle was not signed with that key", "--key")
    return Keys(fps, by_name, by_fp)
