"""uSmart's identifiers: GUIDs, file names, output pipeline ids and the "<GUID>: <name>" lines."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from ..base import PermanentError

#: Output pipeline ids ``resourceContainer:create`` accepts, with their names. The docs
#: list them in a table no stored copy shows (our simulator's choice); they say the
#: real-time Data API is not supported through the API, so it is not offered.
PIPELINE_IDS = {
    "csv": "CSV download",
    "json": "JSON download",
    "geojson": "GeoJSON download",
    "xlsx": "Excel download",
    "api": "Data API",
}
PipelineId = Literal["csv", "json", "geojson", "xlsx", "api"]
#: The organisation's catalogue of all its datasets, public and private.
DCAT_PATH = "/dcat/private"
DCAT = "its DCAT catalogue"
#: What any API key may read; everything else needs the Provider role.
READS = {"dataset:view", DCAT}
GUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def canonical_guid(value: str) -> str:
    """A GUID in its canonical lower-case form; ValueError otherwise."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise ValueError("must be a GUID like 28ccd497-7acd-4470-bd17-721d5cbbd6ef") from None


def optional_guid(value: str) -> str:
    return canonical_guid(value) if value.strip() else ""


def guid_arg(value: str) -> str:
    """``_guid`` for a method argument: a bad one is a PermanentError, like every connector error."""
    try:
        return canonical_guid(value)
    except ValueError:
        raise PermanentError(f"{value!r} is not a GUID") from None


Guid = Annotated[str, AfterValidator(canonical_guid)]
OptionalGuid = Annotated[str, AfterValidator(optional_guid)]


def base_name(name: str) -> str:
    """The last component of a path, whichever separator it uses.

    The platform shows ``fileName`` as is, folders included (usmart.txt warns about it).
    """
    return re.split(r"[\\/]", name)[-1]


def split_guids(value: Any) -> Any:
    """Items that hold several GUIDs (separated by commas, spaces or brackets, as in a
    pasted list) become one item each; anything else is left to the GUID validator."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return value
    items: list[Any] = []
    for item in value:
        if isinstance(item, str):
            items += [token for token in re.split(r"[\s,;\[\]'\"]+", item) if token]
        else:
            items.append(item)
    return items


def parse_pipeline_names(text: str, *, strict: bool = True) -> dict[str, str]:
    """``{guid: name}`` from lines ``<GUID>: <name>``. A line that is not one raises
    ValueError when ``strict``, else is skipped."""
    names: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        match = re.fullmatch(rf"\s*({GUID_RE.pattern})\s*[:=]\s*(.*?)\s*", line)
        if match is None or not match.group(2):
            if strict:
                raise ValueError("one pipeline per line, as '<pipeline GUID>: <name>' (Browse fills it)")
            continue
        names[match.group(1).lower()] = match.group(2)
    return names


def format_pipeline_names(guids: Iterable[str], names: Mapping[str, str]) -> str:
    """The lines ``parse_pipeline_names`` reads, for ``guids`` that have a name, in their order."""
    return "\n".join(f"{guid}: {' '.join(names[guid].split())}" for guid in guids if names.get(guid, "").strip())
