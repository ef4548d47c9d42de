"""uSmart's Credentials and Target, and the parameters of the "add an output pipeline" action."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from ..base import Schema
from .parameters import (
    PIPELINE_IDS,
    Guid,
    OptionalGuid,
    PipelineId,
    base_name,
    format_pipeline_names,
    parse_pipeline_names,
    split_guids,
)


class UsmartCredentials(Schema):
    organisation_guid: Guid = Field(
        title="Organisation GUID",
        description="The GUID between …/org/ and /dcat/ in your organisation's DCAT URL",
    )
    api_key_id: str = Field(title="API key id", min_length=1, max_length=200)
    api_key_secret: SecretStr = Field(title="API key secret", json_schema_extra={"widget": "password"})
    test_dataset_guid: OptionalGuid = Field(
        default="",
        title="Dataset to test with",
        description="Optional: a dataset GUID the key can view. Without it the test asks for an upload URL.",
    )


class UsmartTarget(Schema):
    """Where a release goes. The GUIDs are what the platform gets; ``dataset_title`` and
    ``pipeline_names`` are display-only (filled by Browse, never sent to uSmart)."""

    dataset_guid: Guid = Field(
        title="Dataset GUID",
        description="Browse lists the organisation's datasets (its private DCAT catalogue)",
        json_schema_extra={"browse": True},
    )
    dataset_title: str = Field(
        default="",
        title="Dataset name",
        description="Shown in the portal only; Browse fills it",
        max_length=300,
    )
    file_guid: OptionalGuid = Field(
        default="",
        title="File GUID",
        description="The file to replace with a new revision. Empty: each release adds a new file to the dataset.",
        json_schema_extra={"browse": True},
    )
    file_name: str = Field(
        default="",
        title="File name on uSmart",
        description="The name shown on the platform, e.g. readings.csv (Browse keeps the file's current name)."
        " Empty: the uploaded file's name.",
        max_length=255,
    )
    pipeline_guids: list[Guid] = Field(
        default_factory=list,
        title="Output pipelines to process",
        description="Resource container GUIDs of the dataset, one per line, processed after the upload in this order",
        json_schema_extra={"browse": True},
    )
    pipeline_names: str = Field(
        default="",
        title="Pipeline names",
        description="Shown in the portal only; Browse fills it (one '<GUID>: <name>' per line)",
        max_length=5000,
        json_schema_extra={"widget": "textarea"},
    )

    @field_validator("file_name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if value and (base_name(value) != value or value in (".", "..")):
            raise ValueError("a file name, not a path")
        return value

    @field_validator("pipeline_guids", mode="before")
    @classmethod
    def _several_per_item(cls, value: Any) -> Any:
        return split_guids(value)

    @field_validator("pipeline_guids")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("pipeline_names")
    @classmethod
    def _names_of_chosen_pipelines(cls, value: str, info: ValidationInfo) -> str:
        """Canonical lines, in the order of ``pipeline_guids``, for chosen pipelines only."""
        names = parse_pipeline_names(value)
        return format_pipeline_names(info.data.get("pipeline_guids") or [], names)

    def pipeline_label(self, guid: str) -> str:
        """The pipeline's name when Browse recorded it, else its GUID."""
        return parse_pipeline_names(self.pipeline_names, strict=False).get(guid, guid)


class CreatePipelineParams(Schema):
    pipeline_id: PipelineId = Field(
        title="Output pipeline",
        description="The real-time Data API cannot be added through the API.",
        # A copy, so that pydantic's JSON type accepts it (a dict[str, str] is not a JsonDict).
        json_schema_extra={"choice_labels": {k: v for k, v in PIPELINE_IDS.items()}},
    )
