"""Forms generated from connector schemas: validation lives once, in the connector."""

from __future__ import annotations

import datetime
import json
import types
import typing
from typing import Any, Literal

from django import forms
from pydantic import BaseModel, SecretStr
from pydantic import ValidationError as SchemaError

from connectors.base import Schema

SECRET_SET_HELP = "Stored and hidden. Leave blank to keep it, or type a new value to replace it."  # noqa: S105 - help text


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _choices(annotation: Any, labels: dict[str, str] | None = None) -> list[tuple[Any, str]] | None:
    """Choices of a Literal; ``labels`` (json_schema_extra "choice_labels") names them."""
    if typing.get_origin(annotation) is Literal:
        labels = labels or {}
        return [
            (
                v,
                labels.get(str(v))
                or (str(v).replace("_", " ").replace("-", " ").capitalize() if isinstance(v, str) else str(v)),
            )
            for v in typing.get_args(annotation)
        ]
    return None


def field_for(name: str, info: Any, *, secret_is_set: bool = False) -> forms.Field:
    """A Django form field for one pydantic field."""
    annotation, optional = _unwrap_optional(info.annotation)
    extra = info.json_schema_extra or {}
    label = info.title or name.replace("_", " ").capitalize()
    help_text = info.description or ""
    required = info.is_required() and not optional
    initial = None if info.is_required() else info.get_default(call_default_factory=True)
    extra = extra if isinstance(extra, dict) else {}
    widget = extra.get("widget")
    common: dict[str, Any] = {"label": label, "help_text": help_text, "required": required, "initial": initial}
    field = _field(annotation, optional, required, initial, widget, common, extra, secret_is_set)
    if extra.get("show_when"):
        # Shown only while another field has one of the given values (portal.js).
        field.widget.attrs["data-show-when"] = json.dumps(extra["show_when"])
    return field


def _field(
    annotation: Any,
    optional: bool,
    required: bool,
    initial: Any,
    widget: Any,
    common: dict[str, Any],
    extra: dict[str, Any],
    secret_is_set: bool,
) -> forms.Field:

    if annotation is SecretStr:
        common.update(required=required and not secret_is_set, initial=None)
        if secret_is_set:
            common["help_text"] = SECRET_SET_HELP
        return forms.CharField(
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}), **common
        )
    if (choices := _choices(annotation, extra.get("choice_labels"))) is not None:
        if optional or not required:
            choices = [("", "—")] + choices if optional else choices
        return forms.TypedChoiceField(choices=choices, coerce=lambda v: v, empty_value=None, **common)
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (str,)
        if (choices := _choices(item, extra.get("choice_labels"))) is not None:
            common["required"] = False
            return forms.MultipleChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple, **common)
        common["required"] = False
        common["initial"] = "\n".join(map(str, initial or []))
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "data-list": "1"}), **common)
    if annotation is bool:
        common["required"] = False
        return forms.BooleanField(**common)
    if annotation is int:
        return forms.IntegerField(**common)
    if annotation is float:
        return forms.FloatField(**common)
    if annotation is datetime.date:
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if annotation is dict or typing.get_origin(annotation) is dict:
        common["initial"] = json.dumps(initial or {}, indent=2)
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}), **common)
    if widget == "textarea":
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), **common)
    return forms.CharField(max_length=2000, **common)


class SchemaForm(forms.Form):
    """A form whose fields come from a pydantic model; ``clean()`` validates through it.

    After ``is_valid()``, ``self.validated`` holds the model instance.
    """

    schema: type[BaseModel]
    context: dict[str, Any] | None = None
    validated: Schema  # set by clean(): read it only after is_valid()

    def __init__(
        self,
        *args: Any,
        schema: type[BaseModel],
        stored_secrets: dict[str, str] | None = None,
        context: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        """``stored_secrets``: secret values already saved. They are never rendered; a secret
        left blank in the form keeps its stored value."""
        super().__init__(*args, **kwargs)
        self.schema = schema
        self.context = context
        self._stored_secrets = {k: v for k, v in (stored_secrets or {}).items() if v}
        for name, info in schema.model_fields.items():
            self.fields[name] = field_for(name, info, secret_is_set=name in self._stored_secrets)
            # Stored values (an edit, saved parameters) as the text widgets expect them.
            value = self.initial.get(name)
            if isinstance(self.fields[name], forms.CharField) and isinstance(value, list):
                self.initial[name] = "\n".join(map(str, value))
            elif isinstance(self.fields[name], forms.CharField) and isinstance(value, dict):
                self.initial[name] = json.dumps(value, indent=2)

    def _values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, info in self.schema.model_fields.items():
            if name not in self.cleaned_data:
                continue
            value = self.cleaned_data[name]
            annotation, _optional = _unwrap_optional(info.annotation)
            field = self.fields[name]
            if isinstance(field, forms.CharField) and typing.get_origin(annotation) is list:
                value = [line.strip() for line in (value or "").splitlines() if line.strip()]
            elif isinstance(field, forms.CharField) and (annotation is dict or typing.get_origin(annotation) is dict):
                try:
                    value = json.loads(value) if value else {}
                except json.JSONDecodeError as exc:
                    self.add_error(name, f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
                    continue
            elif value in ("", None) and name in self._stored_secrets:
                value = self._stored_secrets[name]
            elif value in ("", None) and not info.is_required():
                continue  # let the schema's default apply
            values[name] = value
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        values = self._values()
        if self.errors:
            return cleaned
        try:
            validated = self.schema.model_validate(values, context=self.context)
            assert isinstance(validated, Schema)  # noqa: S101 - connector schemas derive from Schema
            self.validated = validated
        except SchemaError as exc:
            for error in exc.errors():
                loc = error.get("loc") or ()
                field = str(loc[0]) if loc and str(loc[0]) in self.fields else None
                message = error["msg"].removeprefix("Value error, ")
                self.add_error(field, message)
        return cleaned

    def data_dict(self) -> dict[str, Any]:
        """The validated values, secrets in clear (for the service to encrypt)."""
        return {
            k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in self.validated.model_dump().items()
        }
