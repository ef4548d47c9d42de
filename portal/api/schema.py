"""OpenAPI schema generation (drf-spectacular)."""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for people.")
    errors = serializers.DictField(  # type: ignore[assignment]  # the error body's field, not Serializer.errors
        required=False, help_text="Field name → its messages (a list, or nested by item for lists and objects)."
    )


ERRORS = {
    "400": "Bad input: malformed JSON, unknown fields, wrong types, or values the platform's rules refuse.",
    "401": "No token, or an unknown or revoked one.",
    "403": "Your role in this team does not allow this.",
    "404": "No such object, or it belongs to another team.",
    "409": "The object's state forbids this (an archived mapping, a release still running...).",
}


class PortalAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, description in ERRORS.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorOutput, code, direction=direction)
                responses[code]["description"] = description
        return responses
