"""Telling someone when a scheduled run stops: a JSON POST to a webhook.

A nightly that fails (bad data, no champion, a full disk, a dead database) must not leave
analysts working yesterday's list without knowing. The flows call :func:`notify_failure`
when a scheduled run fails; it posts ``{"event": "run_failed", "flow", "as_of", "reason",
"data_dir"}`` to ``settings.notify_webhook_url`` (a Slack/Teams-style incoming webhook or
any HTTP endpoint). The reason is masked (:func:`serving.redact.redact`) and cut to one
line. A notification that cannot be delivered is logged, never raised: it must not hide
the failure it reports.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import date
from typing import Any

from pipelines.settings import Settings
from serving.redact import display_url, redact

#: Seconds to wait for the webhook.
TIMEOUT_S = 10.0

_log = logging.getLogger(__name__)


def failure_message(*, flow: str, as_of: date | None, reason: str,
                    settings: Settings) -> dict[str, Any]:
    """The JSON body of a failure notification (secrets masked, reason on one line)."""
    line = " ".join(redact(reason, settings.secrets()).split())[:2000]
    day = as_of.isoformat() if as_of else None
    return {
        "event": "run_failed", "flow": flow, "as_of": day, "reason": line,
        "data_dir": str(settings.data_dir),
        "text": f"delinq {flow} as of {day or '?'} failed: {line}",
    }


def notify_failure(*, settings: Settings, flow: str, as_of: date | None,
                   reason: str) -> bool:
    """Post a failure notification to ``settings.notify_webhook_url`` (if set); True if
    the endpoint accepted it."""
    if settings.notify_webhook_url is None:
        return False
    return _post(settings.notify_webhook_url.get_secret_value(),
                 failure_message(flow=flow, as_of=as_of, reason=reason, settings=settings),
                 what=f"the failed {flow}", secrets=settings.secrets())


def _post(url: str, message: dict[str, Any], *, what: str, secrets: list[str]) -> bool:
    """POST ``message`` as JSON to the webhook ``url``; True if accepted. Never raises: a
    failure is logged with the URL and the error masked by ``secrets`` (the run's own
    outcome must not depend on the endpoint)."""
    request = urllib.request.Request(url, data=json.dumps(message).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        _log.warning("could not notify %s of %s: %s", display_url(url), what,
                     redact(str(exc), secrets))
        return False


def warning_message(*, flow: str, as_of: date | None, lines: list[str],
                    settings: Settings) -> dict[str, Any]:
    """The JSON body of a warning notification (issue 19: a stale champion, drift that
    persists, a demotion): ``event`` ``run_warning``, the lines masked and cut."""
    masked = [" ".join(redact(x, settings.secrets()).split())[:1000] for x in lines]
    day = as_of.isoformat() if as_of else None
    return {
        "event": "run_warning", "flow": flow, "as_of": day, "warnings": masked,
        "data_dir": str(settings.data_dir),
        "text": f"delinq {flow} as of {day or '?'}: " + "; ".join(masked),
    }


def notify_warnings(*, settings: Settings, flow: str, as_of: date | None,
                    lines: list[str]) -> bool:
    """Post the run's warnings to ``settings.notify_webhook_url`` (if set and there are
    any); True if the endpoint accepted them. Never raises (as :func:`notify_failure`)."""
    if settings.notify_webhook_url is None or not lines:
        return False
    return _post(settings.notify_webhook_url.get_secret_value(),
                 warning_message(flow=flow, as_of=as_of, lines=lines, settings=settings),
                 what=f"the {flow} warnings", secrets=settings.secrets())
