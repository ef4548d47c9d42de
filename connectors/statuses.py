"""Status words a connector does not know: shown as they came, then failed after a limit.

Platforms add statuses, rename them, or (uSmart) never document their final one. A
connector maps the words it knows onto Done, Failed or Waiting, and hands every other
word to ``unknown_status``: the step keeps waiting, shows the platform's word and says
it is unknown (``Waiting.warning``), and after ``limit`` such answers in a row it fails
with that word in the message. The count travels in the step's output (the engine hands
it back on every check), so a known answer in between starts it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Failed, StepOutcome, Waiting

#: Answers with an unknown status, in a row, before the step fails.
MAX_UNKNOWN_STATUSES = 10
#: Where the count lives in a step's output.
UNKNOWN_COUNT = "unknown_statuses"


def unknown_status(
    *,
    platform: str,
    word: str,
    what: str,
    remote_ref: str,
    output: Mapping[str, Any],
    limit: int = MAX_UNKNOWN_STATUSES,
) -> StepOutcome:
    """Waiting while fewer than ``limit`` unknown answers came in a row, then Failed.

    ``word`` is the platform's status as it came; ``what`` names the remote job in the
    message ("pipeline CSV download", "query job 42").
    """
    seen = int(output.get(UNKNOWN_COUNT, 0) or 0) + 1
    shown = word if word.strip() else "(empty)"
    output = {**output, UNKNOWN_COUNT: seen}
    if seen >= limit:
        return Failed(
            f"{platform} reported the status '{shown}' for {what}, which the portal does not know, "
            f"{seen} times in a row: look at it on {platform}",
            remote_ref=remote_ref,
            remote_status=word[:100],
            output=output,
        )
    warning = f"{platform} reports '{shown}' for {what}, a status the portal does not know ({seen}/{limit})"
    return Waiting(remote_ref=remote_ref, message=warning, remote_status=word[:100], output=output, warning=warning)


def known_status(output: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``output`` for a known answer: the count back to 0 when one was running, so it starts again.

    The engine merges each outcome's output into the step's, so the count is set to 0
    rather than left out (a missing key would keep the old count).
    """
    if (previous or {}).get(UNKNOWN_COUNT) or output.get(UNKNOWN_COUNT):
        return {**output, UNKNOWN_COUNT: 0}
    return dict(output)
