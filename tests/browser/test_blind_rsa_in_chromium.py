"""static/blind_rsa.js in real headless Chromium, on plain-http pages without crypto.subtle:
the RFC 9474 vector in JavaScript, then the protocol across the two halves (JavaScript
prepares, blinds and finalizes; Python signs and verifies).

Two kinds of page: one served by a tiny http server on 127.0.0.1 with crypto.subtle deleted
before any script runs (Chromium counts loopback as a secure context, so subtle would
otherwise exist), and one at http://seat-tablet.test/ (answered by Playwright from the same
files), which is a genuinely insecure context where Chromium itself provides no subtle."""
from __future__ import annotations

import base64
import http.server
import json
import threading
from pathlib import Path

import pytest

from ballot_service.crypto import blind_rsa as br

pytestmark = [pytest.mark.slow, pytest.mark.browser]

STATIC = Path(br.__file__).resolve().parents[1] / "static"
VECTOR = json.loads((Path(__file__).resolve().parents[1] / "data" / "rfc9474_sha384_pss_randomized.json").read_text())
PAGE = b"""<!doctype html><meta charset="utf-8"><title>blind rsa</title>
<script src="/static/vendor/noble-hashes.js"></script>
<script src="/static/blind_rsa.js"></script>
<p>blind_rsa.js test page</p>"""
FILES = {"/tablet.html": (PAGE, "text/html; charset=utf-8"),
         "/static/blind_rsa.js": ((STATIC / "blind_rsa.js").read_bytes(), "text/javascript"),
         "/static/vendor/noble-hashes.js": ((STATIC / "vendor" / "noble-hashes.js").read_bytes(), "text/javascript")}
# Runs before any page script: no crypto.subtle at all, and a trace if anything asks for it.
NO_SUBTLE = """
delete Crypto.prototype.subtle;
window.__subtleAsked = false;
Object.defineProperty(Crypto.prototype, 'subtle', {configurable: true, enumerable: false,
  get() { window.__subtleAsked = true; return undefined; }});
"""
INSECURE_ORIGIN = "http://seat-tablet.test"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body, ctype = FILES.get(self.path, (b"not found", "text/plain"))
        self.send_response(200 if self.path in FILES else 404)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def static_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(params=["loopback-subtle-deleted", "insecure-origin"])
def tablet(request, new_page, static_server):
    """A page with BlindRSA loaded over plain http and no crypto.subtle."""
    page = new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if request.param == "loopback-subtle-deleted":
        page.add_init_script(NO_SUBTLE)
        page.goto(static_server + "/tablet.html")
        assert page.url.startswith("http://127.0.0.1:")
    else:
        def answer(route):
            path = route.request.url[len(INSECURE_ORIGIN):]
            body, ctype = FILES.get(path, (b"not found", "text/plain"))
            route.fulfill(status=200 if path in FILES else 404, body=body, content_type=ctype)

        page.route(INSECURE_ORIGIN + "/**", answer)
        page.add_init_script("window.__subtleAsked = false;")
        page.goto(INSECURE_ORIGIN + "/tablet.html")
        assert page.evaluate("window.isSecureContext") is False
    assert page.evaluate("location.protocol") == "http:"
    assert page.evaluate("window.crypto.subtle === undefined")
    assert page.evaluate("typeof BlindRSA") == "object"
    page.evaluate("window.__subtleAsked = false")  # our own look just above does not count
    yield page
    assert page.evaluate("window.__subtleAsked") is False
    assert errors == []


def test_rfc9474_vector_in_chromium(tablet):
    got = tablet.evaluate("""(v) => {
        const B = BlindRSA, h = B.hexToBytes, x = B.bytesToHex;
        const pk = B.importPublicKey({n: B.bytesToBase64url(h(v.n)), e: B.bytesToBase64url(h(v.e))});
        const prepared = B.prepare(h(v.msg), {prefix: h(v.msg_prefix)});
        const {blindedMsg, inv} = B.blind(pk, prepared, {salt: h(v.salt), inv: h(v.inv)});
        const sig = B.finalize(pk, prepared, h(v.blind_sig), inv);
        B.verify(pk, prepared, sig);
        let tampered = 'accepted';
        try { B.verify(pk, h(v.msg), sig); } catch (e) { tampered = e.message; }
        return {prepared: x(prepared), encoded: x(B._emsaPssEncode(prepared, pk.modBits - 1, h(v.salt))),
                blinded: x(blindedMsg), inv: x(inv), sig: x(sig), tampered};
    }""", VECTOR)
    assert got["prepared"] == VECTOR["prepared_msg"]
    assert got["encoded"] == VECTOR["encoded_msg"]
    assert got["blinded"] == VECTOR["blinded_msg"]
    assert got["inv"] == VECTOR["inv"]
    assert got["sig"] == VECTOR["sig"]
    assert got["tampered"] == "invalid signature"


def test_javascript_client_with_python_server(tablet):
    key = br.generate_round_key()
    pub = key.public_key()
    nums = pub.public_numbers()
    def b64url(i: int) -> str:
        return base64.urlsafe_b64encode(i.to_bytes((i.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    # The three ways in: PEM, DER and (n, e) all give the same key.
    moduli = tablet.evaluate("""([pem, derHex, n, e]) => {
        const B = BlindRSA;
        return [B.importPublicKey(pem), B.importPublicKey(B.hexToBytes(derHex)), B.importPublicKey({n, e})]
            .map(k => k.n.toString(16) + '/' + k.e.toString(16));
    }""", [br.public_key_pem(key).decode(), br.public_key_der(key).hex(), b64url(nums.n), b64url(nums.e)])
    assert moduli == [f"{nums.n:x}/{nums.e:x}"] * 3

    # Client side in the browser: a random serial, the round's ballot message, prepare, blind.
    client = tablet.evaluate("""(pem) => {
        const B = BlindRSA;
        const pk = B.importPublicKey(pem);
        const serial = B.randomBytes(16);
        const prepared = B.prepare(B.ballotMessage('s14-3.item-2.r1', serial));
        const {blindedMsg, inv} = B.blind(pk, prepared);
        window.__ballot = {pk, prepared, inv};   // inv never leaves the tablet
        return {serial: B.bytesToHex(serial), prepared: B.bytesToHex(prepared), blinded: B.bytesToHex(blindedMsg)};
    }""", br.public_key_pem(key).decode())
    serial, prepared, blinded = (bytes.fromhex(client[k]) for k in ("serial", "prepared", "blinded"))
    assert prepared[32:] == br.ballot_message("s14-3.item-2.r1", serial)
    assert prepared[:32] not in blinded and prepared[32:] not in blinded

    # Server: one blind signature.
    blind_sig = br.blind_sign(key, blinded)

    # Client finalizes (which verifies); a corrupted blind signature is refused there.
    out = tablet.evaluate("""(blindSigHex) => {
        const B = BlindRSA, s = window.__ballot, blindSig = B.hexToBytes(blindSigHex);
        const sig = B.finalize(s.pk, s.prepared, blindSig, s.inv);
        B.verify(s.pk, s.prepared, sig);
        const bad = blindSig.slice(); bad[bad.length - 1] ^= 1;
        let refused = false;
        try { B.finalize(s.pk, s.prepared, bad, s.inv); } catch (e) { refused = e.message === 'invalid signature'; }
        return {sig: B.bytesToHex(sig), refused};
    }""", blind_sig.hex())
    assert out["refused"] is True
    sig = bytes.fromhex(out["sig"])

    # Python accepts the browser's final signature as plain RSA-PSS, and only for that message.
    br.verify(pub, prepared, sig)
    with pytest.raises(br.InvalidSignature):
        br.verify(pub, prepared[:32] + br.ballot_message("s14-3.item-2.r2", serial), sig)
