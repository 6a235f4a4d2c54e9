"""The OpenAPI document (ballot_service/openapi.yaml): valid, every documented path and method is
served, every terminal and station route is documented, and its refusal reasons are the
service's own."""
from __future__ import annotations

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
        routes.setdefault(rule.rule, set()).update(m.lower() for m in rule.methods)
    routes[cast_endpoint.PATH] = {"post"}  # served in front of Flask (cast_endpoint.py)
    for path, ops in spec["paths"].items():
        assert path in routes, f"{path} is documented but not served"
        for method in ops:
            if method in ("get", "post", "put", "patch", "delete"):
                assert method in routes[path], f"{method.upper()} {path} is documented but not served"
    served = {r for r in routes if r.startswith(("/api/terminal/", "/api/station/"))}
    assert served <= set(spec["paths"]), f"undocumented: {served - set(spec['paths'])}"
    reasons = set(spec["components"]["schemas"]["RefusalReason"]["enum"])
    assert reasons == set(ballots.REFUSAL_STATUS)
