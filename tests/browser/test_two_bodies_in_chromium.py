"""Two bodies on one server, in real headless Chromium: a city's congress and a county's, each
with its own secretariat and presiding-screen logins (made by the service's superuser, as
`ballot-service operator add … --body ID` would), run a sitting each at the same time, each
person in a browser context of their own. Neither body's operators see the other's data: the
console lists, direct URLs of the other's sitting, item, roster and screen, the screen chooser
and the audit zip. Tablets vote over the API (test_sitting_in_chromium.py drives them in the
browser). Screenshots: build/screenshots/bodies-*.png."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from browser_support import login, screenshot
from helpers_live import Api, LiveServer, create_operator_in_db, server_env, vote

from ballot_service.crypto import keys
from ballot_service.errors import KeyFileError

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ADMIN = ("admin", "admin-password-1")
BODIES = {"city": "示范市第十七届人民代表大会", "county": "示范县第九届人民代表大会"}
SITTINGS = {"city": "市第四次会议", "county": "县第二次会议"}
LOGINS = {"city": {"secretariat": ("shi-mishu", "shi-mishu-pass"), "display": ("shi-daping", "shi-daping-pass")},
          "county": {"secretariat": ("xian-mishu", "xian-mishu-pass"), "display": ("xian-daping", "xian-daping-pass")}}
VOTES = {"city": ["for", "for", "against"], "county": ["against", "against", "for"]}
# Each body's key has its own passphrase (a fresh database: the city is body 1, the county 2);
# no service-wide passphrase, so neither secretariat's passphrase unlocks the other's key.
PASSPHRASES = {1: "city-key-passphrase-1", 2: "county-key-passphrase-2"}


@pytest.fixture
def live_site(tmp_path, db_url):
    env = {k: v for k, v in server_env(tmp_path, db_url).items() if k != "BALLOT_KEY_PASSPHRASE"}
    env.update({f"BALLOT_KEY_PASSPHRASE_BODY_{i}": p for i, p in PASSPHRASES.items()})
    srv = LiveServer.start(env, workers=2, threads=16)
    srv.keys_dir = env["BALLOT_KEYS_DIR"]
    yield srv
    srv.stop()


def test_two_bodies_run_their_sittings_side_by_side(new_page, live_site, db_url, tmp_path):
    base = live_site.base_url
    create_operator_in_db(db_url, ADMIN, "superuser")

    # --- the superuser makes the two bodies and their keys, then each body's logins -------------
    admin = new_page((1366, 900))
    login(admin, base, ADMIN)
    body_ids = {}
    for which, name in BODIES.items():
        admin.fill("#new-body input[name=name]", name)
        admin.click("#new-body button[type=submit]")
        card = admin.locator(".body-card", has_text=name)
        body_ids[which] = int(card.get_attribute("data-body-id"))
        card.locator("text=生成签名密钥").click()
    assert admin.locator(".new-sitting").count() == 0  # the superuser runs no sitting
    # Each key was written under its own body's passphrase: the other body's does not open it.
    assert body_ids == {"city": 1, "county": 2}
    for body_id, passphrase in PASSPHRASES.items():
        keys.load_key(Path(live_site.keys_dir), keys.body_key_name(body_id), passphrase)
        with pytest.raises(KeyFileError):
            keys.load_key(Path(live_site.keys_dir), keys.body_key_name(body_id), PASSPHRASES[3 - body_id])
    screenshot(admin, "bodies-superuser-console")
    for which, logins in LOGINS.items():
        for role, login_pair in logins.items():
            create_operator_in_db(db_url, login_pair, role, body_ids[which])

    # --- each secretariat, in its own browser context, prepares its sitting ----------------------
    ops, sitting_urls, item_urls, creds = {}, {}, {}, {}
    for which in BODIES:
        op = ops[which] = new_page((1366, 900))
        login(op, base, LOGINS[which]["secretariat"])
        home = op.inner_text("main")
        other = "county" if which == "city" else "city"
        assert BODIES[which] in home and BODIES[other] not in home
    for which in BODIES:  # interleaved: both sittings are prepared at the same time
        op = ops[which]
        roster = tmp_path / f"{which}.csv"
        prefix = 1000 if which == "city" else 2000
        roster.write_text("代表证号,姓名,代表团,座位号\n" + "\n".join(
            f"{prefix + i},{which}代表{i},第一代表团,{i}" for i in range(1, 4)), encoding="utf-8")
        op.click("text=名册")
        op.set_input_files("#roster-upload input[type=file]", str(roster))
        op.click("#roster-upload button[type=submit]")
        op.click("#roster-confirm")
    for which in BODIES:
        op = ops[which]
        op.goto(base + "/console")
        op.fill(".new-sitting input[name=name]", SITTINGS[which])
        op.click(".new-sitting button[type=submit]")
        sitting_urls[which] = op.url
        op.check("#terminals-form input[name=all_seats]")
        op.click("#terminals-form button[type=submit]")
        links = [a.get_attribute("href") for a in op.locator("#credentials tr[data-kind=seat] a.setup-link").all()]
        creds[which] = [unquote(link.split("credential=", 1)[1]) for link in links]
        assert len(creds[which]) == 3
    api = Api.httpx(base)
    for which in BODIES:
        prefix = 1000 if which == "city" else 2000
        for i, cred in enumerate(creds[which], start=1):
            api.call("POST", "/api/terminal/checkin", {"member": str(prefix + i)}, credential=cred)
        op = ops[which]
        op.goto(sitting_urls[which])
        op.click("#new-item summary")
        op.select_option("#new-item select[name=kind]", "resolution")
        op.fill("#new-item input[name=key]", f"{which}-plan")
        op.fill("#new-item input[name=title]", f"{BODIES[which]}关于计划的决议")
        op.click("#new-item button[type=submit]")
        item_urls[which] = op.url
        op.click("#action-open")
        assert "表决已开始" in op.inner_text(".flash.ok")

    # --- the presiding screens: each sees its own sitting only -----------------------------------
    screens = {}
    for which in BODIES:
        screen = screens[which] = new_page((1920, 1080))
        login(screen, base, LOGINS[which]["display"])
        screen.goto(base + "/display")
        chooser = screen.inner_text("body")
        other = "county" if which == "city" else "city"
        assert SITTINGS[which] in chooser and SITTINGS[other] not in chooser
        screenshot(screen, f"bodies-{which}-screen-chooser")

    # --- both votes run at once: casts interleaved ---------------------------------------------
    for i in range(3):
        for which in BODIES:
            vote(api, creds[which][i], {"motion": VOTES[which][i]})

    # --- neither operator reaches the other's data by URL ---------------------------------------
    for which, other in (("city", "county"), ("county", "city")):
        op, screen = ops[which], screens[which]
        for url in (sitting_urls[other], item_urls[other], f"{base}/console/bodies/{body_ids[other]}/roster",
                    f"{base}/display/{sitting_urls[other].rsplit('/', 1)[1]}"):
            for page in (op, screen):
                resp = page.goto(url)
                assert resp.status == 403, f"{which} reached {url}: {resp.status}"
                text = page.inner_text("body")
                assert BODIES[other] not in text and SITTINGS[other] not in text
        screenshot(op, f"bodies-{which}-refused-other-sitting")
        # The audit zip, with this browser's login: the other body's is refused; its own holds
        # its own chain only, nothing of the other body.
        assert op.request.get(f"{base}/console/bodies/{body_ids[other]}/audit-bundle.zip").status == 403
        own = op.request.get(f"{base}/console/bodies/{body_ids[which]}/audit-bundle.zip")
        assert own.status == 200
        with zipfile.ZipFile(io.BytesIO(own.body())) as z:
            held = "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
        assert BODIES[which] in held and BODIES[other] not in held
        assert op.request.get(f"{base}/console/audit-bundle.zip").status == 200

    # --- each closes, tallies, records and publishes its own vote --------------------------------
    for which, outcome in (("city", "通过"), ("county", "未通过")):
        op = ops[which]
        op.goto(item_urls[which])
        op.once("dialog", lambda d: d.accept())
        op.click("#action-close")
        op.click("#action-tally")
        assert outcome in op.inner_text(".round-result")
        op.click("#action-record")
        op.click("#action-publish")
        assert "已公布" in op.inner_text("#record")
        screenshot(op, f"bodies-{which}-published")
    for which in BODIES:
        screen = screens[which]
        screen.goto(f"{base}/display/{sitting_urls[which].rsplit('/', 1)[1]}")
        screen.wait_for_function("document.getElementById('r-outcome') && "
                                 "document.getElementById('r-outcome').textContent.length > 0", timeout=10_000)
        screenshot(screen, f"bodies-{which}-screen-result")
