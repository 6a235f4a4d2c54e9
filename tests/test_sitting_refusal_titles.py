"""Refusals name an item by its title, never its key (issue #17 item 13): the secretariat
knows items by their titles (the key is optional and generated on the form)."""
from __future__ import annotations

from console_support import flashes, post
from helpers_live import Api, create_item, setup_sitting


def errors(data) -> tuple[str, str]:
    e = data["errors"][0]
    return e["message"], e.get("message_zh", "")


def test_refusals_name_the_item_by_its_title(app, api):
    s = setup_sitting(api, members=3, open_vote=True, key="rz-01")  # title: 表决事项 rz-01
    other = create_item(api, s.sitting_id, key="rz-02")
    cases = [("POST", f"/api/admin/items/{other}/open"),       # another vote is open
             ("POST", f"/api/admin/sessions/{s.sitting_id}/close"),  # 闭会 while a vote is open
             ("POST", f"/api/admin/items/{other}/close"),      # not open
             ("POST", f"/api/admin/items/{s.item_id}/tally"),  # not closed yet
             ("POST", f"/api/admin/items/{s.item_id}/record")]  # not tallied
    for method, url in cases:
        status, data = api.call(method, url, expect=None)
        en, zh = errors(data)
        zh = zh or en  # a message written in both languages at once
        assert status == 409, (url, data)
        assert "《表决事项 rz-0" in zh and "表决事项 rz-0" in en, (url, zh, en)
        assert "rz-01 " not in zh.replace("表决事项 rz-01", "") and "rz-02 " not in zh.replace("表决事项 rz-02", "")


def test_the_console_shows_the_title_in_a_refusal(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=True, key="rz-01")
    other = create_item(api, s.sitting_id, key="rz-02")
    r = post(console, f"/console/items/{other}/open", follow_redirects=True)
    kind, text = flashes(r)[-1]
    assert kind == "error" and "《表决事项 rz-01》的表决仍在进行" in text
