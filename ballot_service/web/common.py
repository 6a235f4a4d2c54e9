"""Web plumbing shared by every blueprint: the request's db session, one commit per
request, one JSON error shape, and the operator's login session."""
from __future__ import annotations

import json
import re
import time

from flask import current_app, g, jsonify, make_response, render_template, request, session
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain.grants import end_logins
from ballot_service.errors import BallotError, InvalidInput, Unauthorized
from ballot_service.models import Operator
from ballot_service.numbers import MAX_ROW_ID


def get_db() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["ballot_sessionmaker"]()
    return g.db


def settings():
    """The app's Settings (config.py)."""
    return current_app.config["SETTINGS"]


MAX_DEPTH = 32  # nesting levels of a request body; no request of this API needs more than 4
MAX_ID = 2 ** 53  # integers in a body are below 2^53: exact in every JSON reader (JavaScript's too)

BIG_BODY_BYTES = 8 * 1024 * 1024  # a roster or a terminal list; every other body: settings.max_body_bytes
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def json_body(limit: int | None = None) -> dict:
    """The request's JSON object, or a clear 400 saying what is wrong with it (413 over
    `limit` bytes, by default settings.max_body_bytes)."""
    if g.get("posted_json") is not None:  # read once already (roles.py finds the body in it)
        return g.posted_json
    limit = limit or settings().max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    raw = request.stream.read(limit + 1) if request.content_length is None else request.get_data()
    if len(raw) > limit:
        raise PayloadTooLarge(limit)
    return parse_json_object(raw)


class PayloadTooLarge(InvalidInput):
    status = 413
    error_type = "PayloadTooLarge"

    def __init__(self, limit: int):
        super().__init__(f"request body is larger than {limit} bytes", where="body",
                         zh=f"请求内容超过 {limit} 字节")


def parse_json_object(raw: bytes) -> dict:
    """The one JSON reader of request bodies (cast_endpoint.py uses it too): one JSON object,
    nested at most MAX_DEPTH levels, integers within ±2^53, no NaN or Infinity, no NUL
    character or lone surrogate in any string or key; else InvalidInput naming what is wrong and where."""
    if not raw:
        raise InvalidInput("request body is empty; send a JSON object", where="body", zh="请求内容为空，须为 JSON 对象")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"request body is not UTF-8 (byte {exc.start})", where="body", zh="请求内容不是 UTF-8 编码") from None
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int, parse_float=_finite_float)
    except InvalidInput:
        raise
    except RecursionError:  # far deeper than MAX_DEPTH: the text up to there is valid JSON
        _check_depth(text)
        raise InvalidInput(f"request body is nested too deeply (at most {MAX_DEPTH} levels)", where="body", zh=f"请求内容嵌套过深（最多 {MAX_DEPTH} 层）") from None
    except ValueError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}", where="body", zh="请求内容不是有效的 JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"request body must be a JSON object, not {type(data).__name__}", where="body", zh="请求内容须为 JSON 对象")
    _check_values(data, text)
    return data


def _no_constant(name: str):
    raise InvalidInput(f"{name} is not a JSON number", where="body", zh=f"{name} 不是 JSON 数字")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise InvalidInput(f"the number {text[:40]} is too large", where="body", zh="数字过大")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 17 or abs(int(text)) >= MAX_ID:
        raise InvalidInput(f"the number {text[:40]} is too large: integers must be below 2^53", where="body", zh="数字过大：整数须小于 2^53")
    return int(text)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, naming the path and the character. Called only on
    text that parsed up to the too-deep place (a scan of unterminated strings could take
    quadratic time)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    stack: list[list] = []  # per open container: [kind, index or key]
    last_string = None
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok[0] == '"':
            last_string = tok
        elif tok in "[{":
            stack.append([tok, 0 if tok == "[" else None])
            if len(stack) > MAX_DEPTH:
                raise InvalidInput(f"request body is nested too deeply at {_path(stack)} "
                                   f"(character {m.start() + 1}; at most {MAX_DEPTH} levels)", where="body", zh=f"请求内容嵌套过深（最多 {MAX_DEPTH} 层）")
        elif tok in "]}":
            if stack:
                stack.pop()
        elif tok == "," and stack and stack[-1][0] == "[":
            stack[-1][1] += 1
        elif tok == ":" and stack and stack[-1][0] == "{" and last_string is not None:
            try:
                stack[-1][1] = json.loads(last_string)
            except ValueError:
                stack[-1][1] = "?"


def _path(stack: list[list]) -> str:
    out = "$"
    for kind, at in stack[:-1]:
        out += f"[{at}]" if kind == "[" else f".{at}"
    return out if len(out) <= 200 else out[:200] + "…"


def _check_values(data: dict, text: str) -> None:
    """Walk the parsed body (without recursion): no NUL in a string or key, and no deeper than
    MAX_DEPTH (then _check_depth names the place in the text, which parsed, so its scan is linear)."""
    if "\\u" not in text and text.count("[") + text.count("{") <= MAX_DEPTH:
        # Parsed UTF-8 text gets a NUL or a surrogate only from a \u escape (a raw control
        # character is not JSON), and cannot nest deeper than it has brackets: nothing to walk
        # (a cast's body: a tenth of its step 1).
        return
    stack = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise InvalidInput("a string holds NUL (U+0000) or a lone surrogate (\\ud800-\\udfff), "
                                   "which no database stores", where=path or "body", zh="文本含有 NUL 字符或孤立代理字符，无法保存")
            continue
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            _check_depth(text)
            raise InvalidInput(f"request body is nested too deeply at {path} (at most {MAX_DEPTH} levels)",
                               where="body", zh=f"请求内容嵌套过深（最多 {MAX_DEPTH} 层）")
        if isinstance(value, dict):
            for k, v in value.items():
                if _UNSTORABLE.search(k):
                    raise InvalidInput("a key holds NUL (U+0000) or a lone surrogate", where=path or "body", zh="字段名含有 NUL 字符或孤立代理字符")
                stack.append((v, f"{path}.{k}" if path else k, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))


def field(data: dict, name: str, kind: type | tuple, required: bool = True, default=None, *,
          where: str | None = None, minimum: int | None = None, maximum: int | None = None):
    """Read one field with its type checked (bool is not accepted as int); an int must lie
    within [minimum, maximum] (by default what an INTEGER column holds, ±MAX_ROW_ID). `where` names the field in errors
    (default: its name)."""
    where = where or name
    if name not in data or data[name] is None:
        if required:
            raise InvalidInput(f"missing field {name!r}", where=where, zh=f"缺少字段 {name}")
        return default
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise InvalidInput(f"field {name!r} must be {names}, not {_TYPE_NAMES.get(type(value), type(value).__name__)}",
                           where=where, zh=f"字段 {name} 的类型不正确")
    if isinstance(value, int) and not isinstance(value, bool):
        # Every integer column is an INTEGER (32 bits on PostgreSQL): no field may hold more.
        minimum = -MAX_ROW_ID if minimum is None else minimum
        maximum = MAX_ROW_ID if maximum is None else maximum
        if minimum is not None and value < minimum:
            raise InvalidInput(f"field {name!r} must be at least {minimum}, not {value}", where=where, zh=f"字段 {name} 不能小于 {minimum}")
        if maximum is not None and value > maximum:
            raise InvalidInput(f"field {name!r} must be at most {maximum}, not {value}", where=where, zh=f"字段 {name} 不能大于 {maximum}")
    return value


def id_field(data: dict, name: str, required: bool = True, *, where: str | None = None) -> int | None:
    """A row id: an integer 1 ≤ id ≤ MAX_ROW_ID (a larger one is no row; PostgreSQL would
    refuse it with an error rather than find nothing)."""
    return field(data, name, int, required=required, where=where, minimum=1, maximum=MAX_ROW_ID)


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", dict: "an object",
               list: "an array", type(None): "null"}


def limit_body_to_a_ballot() -> None:
    """A blueprint's before_request for tablets and stations: they send a ballot or a sheet at
    a time, so anything larger is refused early."""
    request.max_content_length = current_app.config["SETTINGS"].max_body_bytes


def commit() -> None:
    get_db().commit()


def error_body(message: str, error_type: str, where: str | None = None) -> dict:
    """The one error shape, for an error that is not a BallotError (see BallotError.to_dict)."""
    err = {"message": message, "errorType": error_type}
    if where:
        err["where"] = where
    return {"errors": [err]}


def error_response(status: int, message: str, error_type: str, where: str | None = None):
    return jsonify(error_body(message, error_type, where)), status


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.is_json


def finish_refusal(exc: BallotError, db: Session | None = None) -> None:
    """End the request's transaction (`db`, else the request's session) after a refusal: it
    keeps its audit event and refusal count when the domain asked for that (commit_audit),
    and nothing else."""
    db = db if db is not None else g.get("db")
    if db is not None:
        if getattr(exc, "commit_audit", False):
            db.commit()
        else:
            db.rollback()


def start_operator_session(op) -> None:
    """Log `op` in: a fresh session cookie holding the operator's name, its session version
    (roles.load_operator checks it on every request) and where it lands (its first role;
    what it may do is read from its grants on every request). security.py ends it after the
    idle time."""
    if op.disabled_at is not None:
        raise Unauthorized(f"the login {op.username} is disabled", where="username", zh=f"登录 {op.username} 已停用")
    if not op.role:
        raise Unauthorized(f"the login {op.username} has no role in any body", where="username",
                           zh=f"登录 {op.username} 在任何机构都没有角色")
    session.clear()
    session["username"], session["version"], session["role"] = op.username, op.session_version, op.role
    session["seen"] = int(time.time())
    session.permanent = True


def end_operator_session(db: Session) -> None:
    """Log out: end every login of this cookie's operator (its session version moves on),
    then forget the cookie."""
    username = session.get("username")
    op = db.scalar(select(Operator).where(Operator.username == username)) if username else None
    if op is not None and op.session_version == session.get("version"):
        end_logins(db, op, "logout")
        db.commit()
    session.clear()


def device_page(template: str):
    """The empty shell of a device's page (seat tablet, counting station): the same for every
    device, filled by its script from the API, never kept, framed or named in a Referer."""
    resp = make_response(render_template(template))
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    return resp
