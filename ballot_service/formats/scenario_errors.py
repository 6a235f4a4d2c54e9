"""The Chinese wording of a scenario file's schema errors (formats/scenario.py): jsonschema
words them in English only, so each keyword that can fail gets its sentence here, with the
values at fault."""
from __future__ import annotations

import json

_TYPES = {"object": "对象", "array": "列表", "string": "文本", "integer": "整数", "number": "数字",
          "boolean": "true 或 false", "null": "null"}

# A text's or list's size limit: the sentence with the limit in it.
_SIZE_LIMITS = {"minLength": "文本太短：至少 {} 个字符", "maxLength": "文本太长：至多 {} 个字符",
                "minItems": "列表太短：至少 {} 项", "maxItems": "列表太长：至多 {} 项"}


def _shown(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _type(value) -> str:
    kinds = value if isinstance(value, list) else [value]
    return "或".join(_TYPES.get(k, str(k)) for k in kinds)


def schema_zh(error) -> str:
    """One jsonschema.ValidationError in Chinese (the English is error.message)."""
    kw, want, got = error.validator, error.validator_value, error.instance
    if kw == "required":
        missing = [k for k in want if isinstance(got, dict) and k not in got]
        return f"缺少字段 {'、'.join(missing) or _shown(want)}"
    if kw == "additionalProperties":
        extra = sorted(k for k in got if k not in error.schema.get("properties", {})) if isinstance(got, dict) else []
        return f"不允许的字段 {'、'.join(extra)}"
    if kw == "type":
        return f"类型不正确：应为{_type(want)}，而不是 {_shown(got)}"
    if kw == "enum":
        return f"{_shown(got)} 不可用：取值须为 {'、'.join(_shown(v) for v in want)} 之一"
    if kw == "const":
        return f"取值须为 {_shown(want)}，而不是 {_shown(got)}"
    if kw in ("minimum", "exclusiveMinimum"):
        return f"{_shown(got)} 太小：不得小于{'或等于' if kw == 'exclusiveMinimum' else ''} {want}"
    if kw in ("maximum", "exclusiveMaximum"):
        return f"{_shown(got)} 太大：不得大于{'或等于' if kw == 'exclusiveMaximum' else ''} {want}"
    if kw in _SIZE_LIMITS:
        return _SIZE_LIMITS[kw].format(want)
    if kw == "uniqueItems":
        return "列表中有重复项"
    if kw == "pattern":
        return f"{_shown(got)} 的格式不正确（须符合 {want}）"
    if kw in ("minProperties", "maxProperties"):
        return f"字段个数须{'至少' if kw == 'minProperties' else '至多'} {want} 个"
    return f"内容不符合场景格式（{kw}）"
