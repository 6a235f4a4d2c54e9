"""Screen language: Simplified Chinese by default, English on request.

Strings are written in place as a pair, `t("应到", "Members")`, so a reader sees both and no
catalogue can drift from the template that uses it. The language comes from `?lang=` (which
also sets a cookie), then the `lang` cookie, then BALLOT_LANGUAGE."""
from __future__ import annotations

from flask import Flask, current_app, g, request

from ballot_service import vocab

LANGUAGES = ("zh", "en")
COOKIE = "lang"


def current_language() -> str:
    if "lang" not in g:
        asked = request.args.get("lang") or request.cookies.get(COOKIE)
        g.lang = asked if asked in LANGUAGES else current_app.config["SETTINGS"].language
    return g.lang


def t(zh: str, en: str) -> str:
    return en if current_language() == "en" else zh


def label(value: str, enum: type | None = None) -> str:
    """A stored vocabulary word as this screen's language calls it (vocab.LABELS): templates
    write `label(it.channel, vocab.Channel)` and compare with `vocab.Channel.PAPER`."""
    return t(*vocab.label_pair(value, enum))


def register(app: Flask) -> None:
    @app.context_processor
    def _inject():
        return {"t": t, "lang": current_language(), "label": label, "vocab": vocab}

    @app.after_request
    def _remember(response):
        asked = request.args.get("lang")
        if asked in LANGUAGES and asked != request.cookies.get(COOKIE):
            response.set_cookie(COOKIE, asked, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
        return response
