"""uSmart's answers read: S3's XML errors, the DCAT catalogue's JSON(-LD) and resource containers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from ..errortext import error_sentence
from .parameters import PIPELINE_IDS

#: The organisation's catalogue of all its datasets, public and private.
DCAT_PATH = "/dcat/private"
DCAT = "its DCAT catalogue"
#: What any API key may read; everything else needs the Provider role.
READS = {"dataset:view", DCAT}


def s3_error_message(response: httpx.Response) -> str:
    """``Code: Message`` of an S3 XML error, never the raw body.

    S3's SignatureDoesNotMatch body quotes the signature and string to sign, which
    must not reach a message.
    """
    code = re.search(r"<Code>([^<]{1,100})</Code>", response.text)
    message = re.search(r"<Message>([^<]{1,300})</Message>", response.text)
    parts = [m.group(1) for m in (code, message) if m]
    return ": ".join(parts) or f"HTTP {response.status_code} {response.reason_phrase}"


def first(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first key present (plain DCAT-US keys, then JSON-LD prefixed ones)."""
    return next((mapping[k] for k in keys if mapping.get(k) not in (None, "", [])), None)


def text(value: Any) -> str:
    """A JSON-LD literal as text: a string, ``{"@value": ...}`` or the first of a list."""
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("@value", value.get("@id", ""))
    return str(value).strip() if value is not None else ""


def pipeline(container: dict[str, Any]) -> dict[str, Any]:
    pipeline_id = str(container.get("pipelineId") or "")
    return {
        "guid": container.get("resourceContainerGUID"),
        "name": container.get("name") or PIPELINE_IDS.get(pipeline_id) or pipeline_id,
        "pipeline_id": pipeline_id,
        "status": " ".join(str(container.get("status") or "").lower().split()),
        "raw_status": str(container.get("status") or ""),
        # The pipeline's own words: its message, else its error or error log.
        "status_message": error_sentence(
            [container.get(k) for k in ("statusMessage", "errorMessage", "error", "errorLog", "errors")]
        ),
        "process_id": container.get("processId") or "",
        "processed_at": container.get("processedAt") or "",
    }
