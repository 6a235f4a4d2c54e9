"""The OpenAPI document (ballot_service/openapi.yaml): valid, every documented path and method is
served, every terminal, station and admin API route is documented, and its refusal reasons are the
service's own."""
from __future__ import annotations

import re
from pathlib import Path

import openapi_spec_validator as validator
import yaml

from ballot_service.formats import ballots
from ballot_service.web import cast_endpoint

OPENAPI = Path(__file__).resolve().parent.parent / "ballot_service" / "openapi.yaml"


def test_openapi_document_is_valid_and_matches_routes(app):
    spec = yaml.safe_load(OPENAPI.read_text("utf-8"))
    validator.validate(spec)
    routes = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # <int:item_id> is {item_id}
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods)
    routes[cast_endpoint.PATH] = routes[cast_endpoint.SET_PATH] = {"post"}  # served in front of Flask (cast_endpoint.py)
    for path, ops in spec["paths"].items():
        assert path in routes, f"{path} is documented but not served"
        for method in ops:
            if method in ("get", "post", "put", "patch", "delete"):
                assert method in routes[path], f"{method.upper()} {path} is documented but not served"
    served = {(r, m) for r, ms in routes.items() if r.startswith(("/api/terminal/", "/api/station/", "/api/admin/"))
              for m in ms if m in ("get", "post", "put", "patch", "delete")}
    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert served <= documented, f"undocumented: {sorted(served - documented)}"
    reasons = set(spec["components"]["schemas"]["RefusalReason"]["enum"])
    assert reasons == set(ballots.REFUSAL_STATUS)
