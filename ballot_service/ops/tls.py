"""HTTPS in the hall without the internet: a local certificate authority (CA) made once per
instance and a server certificate it signs for the names and addresses tablets use.

Files in `<instance>/tls/` (folder 0700, private keys 0600):

- `ca.key`, `ca.crt`: the CA (ECDSA P-256, self-signed, 10 years). `ca.crt` is public: each
  tablet installs it once as a trusted root; `ca.key` never leaves the server.
- `server.key`, `server.crt`: the server's key and certificate (SAN: every --host given, DNS
  names and IP addresses; serverAuth). 825 days, the longest Apple devices accept for a TLS
  server certificate, even one from a locally trusted CA. `tls init` again re-issues it from the
  same CA (new names, or before it expires) so tablets need not install anything again.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ballot_service.errors import BallotError

CA_KEY, CA_CERT = "ca.key", "ca.crt"
SERVER_KEY, SERVER_CERT = "server.key", "server.crt"
CA_DAYS = 3652
SERVER_DAYS = 825


class TLSError(BallotError):
    status = 500
    error_type = "TLSError"


def tls_dir(instance_path) -> Path:
    return Path(instance_path) / "tls"


def server_files(instance_path) -> tuple[Path, Path] | None:
    """(certificate, key) when `tls init` made both, else None."""
    d = tls_dir(instance_path)
    cert, key = d / SERVER_CERT, d / SERVER_KEY
    return (cert, key) if cert.is_file() and key.is_file() else None


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def parse_hosts(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        host = host.strip().strip("[]")
        if not host:
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if any(c in host for c in "/: ") or host.startswith("."):
                raise TLSError(f"--host {host!r} is neither an IP address nor a DNS name", where="--host",
                               zh=f"--host {host!r} 既不是 IP 地址也不是域名") from None
            names.append(x509.DNSName(host.lower()))
    if not names:
        raise TLSError("give at least one --host (the address tablets use, e.g. 10.0.0.5)", where="--host",
                       zh="请至少给出一个 --host（平板访问所用的地址，例如 10.0.0.5）")
    return names


def _make_ca(d: Path, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ballot-service"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"表决系统本地根证书 ballot-service local CA ({socket.gethostname()})"),
    ])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(d / CA_KEY, _pem_key(key))
    _write_public(d / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _load_ca(d: Path):
    try:
        key = serialization.load_pem_private_key((d / CA_KEY).read_bytes(), None)
        cert = x509.load_pem_x509_certificate((d / CA_CERT).read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSError(f"the CA in {d} cannot be read ({exc}): move {d} away and run `tls init` again "
                       f"(tablets must then install the new CA)", where=str(d),
                       zh=f"无法读取 {d} 中的根证书（{exc}）：请将 {d} 移走后重新运行 `tls init`（平板需重新安装根证书）") from None
    return key, cert


def init_tls(instance_path, hosts: list[str], *, now: dt.datetime | None = None) -> dict:
    """Make the CA if there is none, then (re-)issue the server certificate for `hosts`.
    Returns the paths and the CA's SHA-256 fingerprint (to compare when installing it)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    names = parse_hosts(hosts)
    d = tls_dir(instance_path)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    created_ca = not (d / CA_KEY).exists()
    ca_key, ca_cert = _make_ca(d, now) if created_ca else _load_ca(d)
    key = ec.generate_private_key(ec.SECP256R1())
    first = names[0].value
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(first))]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(d / SERVER_KEY, _pem_key(key))
    _write_public(d / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM))
    return {
        "dir": d, "ca_cert": d / CA_CERT, "server_cert": d / SERVER_CERT, "created_ca": created_ca,
        "ca_sha256": ca_cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        "names": [str(n.value) for n in names], "server_not_after": cert.not_valid_after_utc,
    }
