"""The evaluation fields of the console's add-item form (templates/console/_evaluation_fields.html):
options typed one per line, best first, and the grading (cumulative majority, or by the rate
with steps typed "满意 | 80"). Only turns text into the API's shapes; evaluation_items checks them."""
from __future__ import annotations

import re

from ballot_service.errors import InvalidInput
from ballot_service.web.console.common import pipe_lines
from ballot_service.web.i18n import t

_PERCENT = re.compile(r"^(\d{1,3})(?:\.(\d{1,2}))?%?$")


def parse_options(text: str) -> list[dict] | None:
    """One option per line, best first: `名称` or `编号 | 名称`; nothing typed → the default scale."""
    out = []
    for n, parts in pipe_lines(text):
        if len(parts) == 1:
            out.append({"key": f"o{len(out) + 1}", "title": parts[0]})
        elif len(parts) == 2 and parts[0] and parts[1]:
            out.append({"key": parts[0], "title": parts[1]})
        else:
            raise InvalidInput(t(f"测评选项第 {n} 行应为“名称”或“编号 | 名称”",
                                 f"options line {n}: write 'title' or 'key | title'"), where="options")
    return out or None


def parse_grading(by: str, steps_text: str, options: list[dict] | None, default: list[dict]) -> dict | None:
    """The form's grading: None (cumulative majority) or {"by": "rate_thresholds", "steps": […]},
    each step "选项名称或编号 | 80" or "… | 80.5" (percent, at most two decimals)."""
    if by != "rate_thresholds":
        return None
    opts = options or default
    steps = []
    for n, parts in pipe_lines(steps_text):
        m = _PERCENT.match(parts[1]) if len(parts) == 2 else None
        key = next((o["key"] for o in opts if parts[0] in (o["key"], o["title"])), None)
        if m is None or key is None:
            raise InvalidInput(t(f"分档第 {n} 行应为“选项 | 最低比率”，如“满意 | 80”，选项须是测评选项之一",
                                 f"steps line {n}: write 'option | minimum %', e.g. '满意 | 80'"), where="steps")
        steps.append({"option": key, "min_hundredths": int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))})
    if not steps:
        raise InvalidInput(t("按比率评定等次须填写分档", "grading by rate needs steps"), where="steps")
    return {"by": "rate_thresholds", "steps": steps}
