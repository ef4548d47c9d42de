"""Pre-flight checks of a release before its button is pressed.

Each check is a blocker (the platform, or the portal, would refuse), a warning (it would
run, but something looks off) or fine. Checks: the mapping and connection can release, the
target exists on the platform (``Connector.check_target``), the file fits the mapping (type,
size, and for CSV the header against the last successful release's), and a diff against
the last successful release (size, rows, columns added or removed)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Literal

from portal.exceptions import ApplicationError
from portal.models import Mapping, Release, ReleaseStatus, Upload
from portal.services.releases import release_check
from portal.services.target_checks import mapping_target_check

Level = Literal["ok", "warning", "blocker"]


#: Rows are counted only in files up to this size (read once, streamed).
ROW_COUNT_MAX_BYTES = 64 * 1024 * 1024


HEADER_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Check:
    level: Level
    title: str
    detail: str = ""


@dataclass
class Preflight:
    checks: list[Check] = field(default_factory=list)
    previous: Release | None = None

    @property
    def blockers(self) -> list[Check]:
        return [c for c in self.checks if c.level == "blocker"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.level == "warning"]

    def add(self, level: Level, title: str, detail: str = "") -> None:
        self.checks.append(Check(level, title, detail))


def csv_header(upload: Upload) -> list[str] | None:
    """The first line's columns, or None when the file is not CSV-like or cannot be read."""
    if upload.extension not in ("csv", "tsv", "txt"):
        return None
    try:
        with upload.file.open("rb") as f:
            head = f.read(HEADER_MAX_BYTES).decode("utf-8-sig", errors="replace")
    except OSError:
        return None
    first = head.splitlines()[0] if head else ""
    delimiter = "\t" if upload.extension == "tsv" else ","
    return [c.strip() for c in next(csv.reader(io.StringIO(first), delimiter=delimiter), [])]


def count_rows(upload: Upload) -> int | None:
    """Data rows (lines after the header), streamed; None for big or non-CSV files."""
    if upload.extension not in ("csv", "tsv", "txt") or upload.size > ROW_COUNT_MAX_BYTES:
        return None
    lines, last = 0, b"\n"
    try:
        with upload.file.open("rb") as f:
            while chunk := f.read(1024 * 1024):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    if last != b"\n":
        lines += 1
    return max(lines - 1, 0)


def last_successful_release(mapping: Mapping) -> Release | None:
    return (
        Release.objects.filter(mapping=mapping, status=ReleaseStatus.SUCCEEDED, upload__isnull=False)
        .select_related("upload")
        .order_by("-created_at", "-id")
        .first()
    )


def release_preflight(*, mapping: Mapping, upload: Upload | None, ask_platform: bool = True) -> Preflight:
    result = Preflight()
    connector_class = mapping.connection.connector_class
    try:
        release_check(mapping=mapping, upload=upload)
    except ApplicationError as exc:
        result.add("blocker", "The portal would refuse this release", exc.message)
    if upload is None and connector_class.needs_file:
        result.add("warning", "No file chosen", "Only steps that send no file can run.")
    if ask_platform:
        try:
            target = mapping.target_schema()
        except ValueError:
            result.add("blocker", "The mapping's target no longer validates", "Edit the mapping.")
        else:
            check = mapping_target_check(connection=mapping.connection, target=target)
            for problem in check.problems:
                result.add("blocker", f"{connector_class.label} does not have the target", problem)
            if check.unverified:
                result.add("warning", "The target could not be checked", check.unverified)
            if not check.problems and not check.unverified:
                result.add("ok", f"The target exists on {connector_class.label}", mapping.target_label())
    if upload is None:
        return result
    if upload.size == 0:
        result.add("blocker", "The file is empty")
    previous = last_successful_release(mapping)
    result.previous = previous
    if previous is None or previous.upload is None:
        result.add("ok", "First release of this mapping", "Nothing to compare the file with.")
        return result
    before = previous.upload
    if before.pk == upload.pk:
        result.add("warning", "This file was already released", f"Release #{previous.pk} sent the same upload.")
    elif before.sha256 == upload.sha256:
        result.add("warning", "Same content as the last release", f"Release #{previous.pk} sent identical bytes.")
    if before.extension != upload.extension:
        result.add("warning", "Another file type than last time", f".{before.extension} then, .{upload.extension} now.")
    ratio = upload.size / before.size if before.size else None
    size_detail = f"{before.size:,} → {upload.size:,} bytes"
    if ratio is not None and (ratio < 0.5 or ratio > 2):
        result.add("warning", "The size changed a lot", size_detail)
    else:
        result.add("ok", "Size", size_detail)
    old_cols, new_cols = csv_header(before), csv_header(upload)
    if old_cols is not None and new_cols is not None:
        added = [c for c in new_cols if c not in old_cols]
        removed = [c for c in old_cols if c not in new_cols]
        if removed:
            result.add("warning", "Columns removed since the last release", ", ".join(removed))
        if added:
            result.add("warning", "Columns added since the last release", ", ".join(added))
        if not added and not removed:
            same_order = old_cols == new_cols
            result.add(
                "ok" if same_order else "warning",
                "Same columns as the last release" if same_order else "Same columns, in another order",
                ", ".join(new_cols),
            )
    old_rows, new_rows = count_rows(before), count_rows(upload)
    if old_rows is not None and new_rows is not None:
        level: Level = "warning" if old_rows and (new_rows < old_rows / 2 or new_rows > old_rows * 2) else "ok"
        result.add(level, "Rows", f"{old_rows:,} → {new_rows:,} ({new_rows - old_rows:+,})")
    return result
