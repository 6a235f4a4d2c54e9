"""The audit bundle carries the scanned pages' SHA-256 (issue #18 item 6): sorted, no page id,
scan time or order; `audit verify` holds the list to the chain's page_scanned events, and with
`--images` (opt-in, the auditors who may see ballots) checks each exported image against it."""
from __future__ import annotations

import hashlib
import json
import shutil

import cv2
import numpy as np
import pytest
from bundle_support import rewrite_manifest
from click.testing import CliRunner
from helpers_live import setup_sitting
from station_support import blank_pages, mark
from terminal_support import events

from ballot_service.bundle import layout
from ballot_service.bundle.encoding import pretty_json
from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.verify import verify_bundle
from ballot_service.cli import main


def run(settings_env, *args):
    result = CliRunner().invoke(main, list(args), env=settings_env, catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def scanned(app, api, settings_env, tmp_path):
    """A paper vote with three scanned pages (one of them not a ballot), its bundle and its images."""
    s = setup_sitting(api, members=4, channel="paper")
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 2})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    rng = np.random.default_rng(5)
    blank = blank_pages(printed["ballots"], ("motion",))
    folder = tmp_path / "scanner"
    folder.mkdir()
    cv2.imwrite(str(folder / "p1.png"), mark(blank[0], ("motion",), {"motion": "for"}, rng))
    cv2.imwrite(str(folder / "p2.png"), mark(blank[1], ("motion",), {"motion": "against"}, rng))
    cv2.imwrite(str(folder / "p3.png"), np.full((800, 600), 255, np.uint8))  # a blank sheet: not a ballot
    assert run(settings_env, "scan", str(s.sitting_id), str(folder))[0] == 0
    _, queue = api.call("GET", "/api/station/queue", credential=s.counter)
    for p in queue["pages"]:
        for cred in (s.counter, s.scrutineer):
            api.call("POST", f"/api/station/pages/{p['id']}/decision", {"decision": {"reject": True}},
                     credential=cred)
    code, out = run(settings_env, "audit", "export", str(tmp_path / "bundle"))
    assert code == 0, out
    code, out = run(settings_env, "scan-images", "export", str(s.sitting_id), str(tmp_path / "images"))
    assert code == 0, out
    return tmp_path / "bundle", tmp_path / "images", [json.loads(e.data) for e in events(app, "page_scanned")]


def test_the_bundle_lists_the_page_hashes_sorted_without_ids(scanned, settings_env):
    b, images, scans = scanned
    doc = json.loads((b / layout.SCANNED_PAGES).read_text("utf-8"))
    hashes = [p["sha256"] for p in doc["pages"]]
    assert hashes == sorted(hashes) and sorted(hashes) == sorted(e["sha256"] for e in scans) and len(hashes) == 3
    assert all(set(p) == {"sha256", "session_id", "round_id"} for p in doc["pages"])  # no page id, no time
    summary = verify_bundle(b)
    assert summary["scanned_pages"] == 3 and "images_checked" not in summary  # images only when asked
    assert verify_bundle(b, images=images)["images_checked"] == 3
    code, out = run(settings_env, "audit", "verify", str(b), "--images", str(images))
    assert code == 0 and "images checked 3" in out, out


def _tampered(b, tmp_path, change):
    bad = tmp_path / "bad"
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(b, bad)
    doc = json.loads((bad / layout.SCANNED_PAGES).read_text("utf-8"))
    change(doc["pages"])
    (bad / layout.SCANNED_PAGES).write_text(pretty_json(doc), "utf-8")
    rewrite_manifest(bad)
    return bad


@pytest.mark.parametrize("change", [
    lambda pages: pages.pop(),                                         # a page removed
    lambda pages: pages.append({**pages[-1], "sha256": "f" * 64}),     # a page added
    lambda pages: pages.reverse(),                                     # scan order put back in
    lambda pages: pages[0].update(sha256="0" * 64),                    # a hash replaced
])
def test_a_changed_page_list_is_refused(scanned, tmp_path, change):
    b, _, _ = scanned
    with pytest.raises(BundleInvalid):
        verify_bundle(_tampered(b, tmp_path, change))


def test_the_list_cannot_be_dropped_while_the_chain_has_pages(scanned, tmp_path):
    b, _, _ = scanned
    bad = tmp_path / "dropped"
    shutil.copytree(b, bad)
    (bad / layout.SCANNED_PAGES).unlink()
    rewrite_manifest(bad)
    with pytest.raises(BundleInvalid, match="missing"):
        verify_bundle(bad)


def test_an_altered_or_foreign_image_is_refused(scanned, tmp_path, settings_env):
    b, images, _ = scanned
    manifest = json.loads((images / "manifest.json").read_text("utf-8"))
    page = images / f"{manifest[0]['page_id']}.png"
    altered = tmp_path / "altered"
    shutil.copytree(images, altered)
    img = cv2.imread(str(altered / page.name), cv2.IMREAD_GRAYSCALE)
    img[10:20, 10:20] = 0  # a mark added after the scan
    cv2.imwrite(str(altered / page.name), img)
    with pytest.raises(BundleInvalid, match="changed"):
        verify_bundle(b, images=altered)
    # the image replaced and its manifest entry rewritten to match: not a page of this bundle
    data = (altered / page.name).read_bytes()
    manifest[0]["sha256"] = hashlib.sha256(data).hexdigest()
    (altered / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(BundleInvalid, match="not a page the bundle lists"):
        verify_bundle(b, images=altered)
    code, out = run(settings_env, "audit", "verify", str(b), "--images", str(altered))
    assert code == 1
