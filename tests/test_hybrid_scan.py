"""A hybrid vote's paper ballot carries the round key's RSA signature in its QR code (about
twice the text of a body-key ballot: a denser code). The mark reader must still decode it from
scans at 150, 200 and 300 dpi, skewed, scaled, noisy, JPEG-compressed, upside down or creased,
as it does the other ballots (issue #18 item 2)."""
from __future__ import annotations

import secrets

import numpy as np
import pytest
from omr_synth import distort
from station_support import blank_pages, mark

from ballot_service.formats import ballots
from ballot_service.formats.encoding import b64url_encode
from ballot_service.scan import omr

KEYS = ("motion",)


def _round_key_text(rng_round: int) -> str:
    payload = {"v": 1, "body": 3, "session": 12, "item": 345, "round": 1, "serial": secrets.token_hex(16)}
    return ballots.round_key_text(payload, f"r{rng_round}", b64url_encode(secrets.token_bytes(32)),
                                  b64url_encode(secrets.token_bytes(256)))


@pytest.mark.parametrize("dpi", [150, 200, 300])
def test_the_round_key_ballot_qr_is_read_from_distorted_scans(dpi):
    rng = np.random.default_rng(dpi)
    texts = [_round_key_text(1000 + i) for i in range(4)]
    assert ballots.text_to_token(texts[0])["round_ref"] == "r1000"
    choices = ("for", "against", "abstain", "for")
    pages = blank_pages(texts, KEYS, dpi=dpi)
    for i, (text, page, choice) in enumerate(zip(texts, pages, choices)):
        marked = mark(page, KEYS, {"motion": choice}, rng, dpi=dpi)
        img = distort(marked, rng, upside_down=(i == 1), crease=(i == 2), dpi=dpi)
        r = omr.read_page(img, lambda payload: KEYS)
        assert r.qr_text == text, (dpi, i, r.reasons)
        assert r.readable and r.marks.get("motion") == choice, (dpi, i, r.reasons)
