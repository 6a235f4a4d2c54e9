"""Public page for installing the hall's local certificate authority on tablets and phones
(HTTPS without the internet, ops/tls.py): GET /tls shows the CA's fingerprint and a QR code of
GET /tls/ca.crt, the certificate itself. Public: a CA certificate is no secret, and a tablet
must fetch it before it trusts anything."""
from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from flask import Blueprint, current_app, render_template, send_file

from ballot_service.ops import tls
from ballot_service.render import qr
from ballot_service.vocab import Role
from ballot_service.web.roles import requires
from ballot_service.web.urls import public_url_for

bp = Blueprint("tls", __name__)


def _ca_path():
    path = tls.tls_dir(current_app.config["SETTINGS"].instance_path) / tls.CA_CERT
    return path if path.is_file() else None


@bp.get("/tls")
@requires(Role.PUBLIC)
def tls_page():
    path = _ca_path()
    if path is None:
        return render_template("tls.html", ca=None), 404
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    url = public_url_for("tls.ca_cert")
    return render_template("tls.html", ca={"sha256": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
                                           "url": url, "qr_svg": qr.qr_svg(url),
                                           "until": cert.not_valid_after_utc.date().isoformat()})


@bp.get("/tls/ca.crt")
@requires(Role.PUBLIC)
def ca_cert():
    path = _ca_path()
    if path is None:
        return render_template("tls.html", ca=None), 404
    return send_file(path, mimetype="application/x-x509-ca-cert", as_attachment=True,
                     download_name="ballot-service-ca.crt")
