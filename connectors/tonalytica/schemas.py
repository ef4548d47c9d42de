"""TONalytica's Credentials, Target and Params, and the resolution of a run's parameter values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from ..base import Schema
from .parameters import ParameterType, coerce_parameter, is_blank


class TonalyticaCredentials(Schema):
    api_key: SecretStr = Field(
        title="User API key",
        description="From your TONalytica profile page. Sent as 'Authorization: Key ...', never in a URL.",
    )


class TonalyticaTarget(Schema):
    """A saved query, with its parameter declarations copied when the mapping was made.

    ``TonalyticaConnector.target_for_query`` builds one from the live query.
    """

    # Both fields have a Browse… button (``browse``): a choice fills every field below from
    # the live query. query_name is browsable too because the portal renders an int field as
    # a number input, where no search text can be typed.
    query_id: int = Field(
        gt=0,
        title="Query id",
        description="Browse… lists the saved queries; with an id typed in, it looks that query up",
        json_schema_extra={"browse": True},
    )
    query_name: str = Field(
        default="",
        max_length=255,
        title="Query name",
        description="For display only. Type part of a name and Browse… to search the saved queries",
        json_schema_extra={"browse": True},
    )
    parameter_types: dict[str, ParameterType] = Field(
        default_factory=dict, title="Parameter types", description="name -> type, as declared by the query"
    )
    parameter_defaults: dict[str, Any] = Field(
        default_factory=dict,
        title="Default parameter values",
        description="name -> value used when a release gives none",
    )
    parameter_options: dict[str, list[str]] = Field(
        default_factory=dict,
        title="Dropdown options",
        description="name -> allowed values of a dropdown (enum) parameter",
    )
    max_age: int = Field(
        default=-1,
        ge=-1,
        title="Accept a cached result up to (seconds)",
        description="-1 accepts any cached result, 0 always runs the query",
    )

    @model_validator(mode="after")
    def _typed_defaults(self) -> TonalyticaTarget:
        problems = [
            f"default for undeclared parameter '{n}'" for n in self.parameter_defaults if n not in self.parameter_types
        ]
        problems += [
            f"options for undeclared parameter '{n}'" for n in self.parameter_options if n not in self.parameter_types
        ]
        typed = {}
        for name, value in self.parameter_defaults.items():
            kind = self.parameter_types.get(name)
            if kind is None:
                continue
            if is_blank(kind, value):
                continue  # no default: the parameter is required at release time
            try:
                typed[name] = coerce_parameter(name, kind, value, self.parameter_options.get(name, ()))
            except ValueError as exc:
                problems.append(f"default: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "parameter_defaults", typed)
        return self


class TonalyticaParams(Schema):
    """What one release asks for. With the target in the validation context (as the portal
    validates), every value is checked against the declared types and required parameters."""

    # The portal's form renders this dict as a JSON textarea, the bool as a checkbox and the
    # optional int as an optional number field; errors about values land under "Parameters".
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        # Validated even when absent: a declared parameter without a default must be given.
        validate_default=True,
        title="Parameters",
        description=(
            'A JSON object of name -> value, e.g. {"limit": 60}; it overrides the mapping\'s defaults. '
            'Dates as "YYYY-MM-DD", ranges as {"start": ..., "end": ...}; a blank value uses the default.'
        ),
    )
    force_refresh: bool = Field(
        default=False,
        title="Force a fresh run",
        description="Run the query now (max_age 0) instead of accepting a cached result",
    )
    max_age: int | None = Field(
        default=None, ge=-1, title="Accept a cached result up to (seconds)", description="Defaults to the mapping's"
    )

    @field_validator("parameters")
    @classmethod
    def _against_target(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Names stripped; with the target in the context, values checked and typed as declared.

        A field validator (not a model one) so that the portal shows the problems under the
        Parameters field, next to what the user typed.
        """
        value = {str(k).strip(): v for k, v in value.items()}
        target = (info.context or {}).get("target")
        if not isinstance(target, TonalyticaTarget):
            return value
        resolved = resolve_parameters(target, value)
        # Keep the real overrides only (a blank field means "the default"), in the shape
        # Redash wants (numbers as numbers...): a later change of a default still applies.
        return {k: resolved[k] for k, v in value.items() if not is_blank(target.parameter_types[k], v)}

    def effective_max_age(self, target: TonalyticaTarget) -> int:
        if self.force_refresh:
            return 0
        return target.max_age if self.max_age is None else self.max_age


class DashboardFilter(Schema):
    """The filters of the ``dashboards`` action: Redash's own list parameters."""

    search: str = Field(default="", max_length=100, title="Search", description="Part of a dashboard's name")
    page: int = Field(default=1, ge=1, le=10_000, title="Page")


class DashboardRef(Schema):
    """The ``dashboard`` action's parameter: a dashboard's slug or id, as the dashboards table shows them."""

    dashboard: str = Field(
        min_length=1,
        max_length=140,
        title="Dashboard",
        description="Its slug (e.g. wallet-activity) or its id, from the Dashboards table",
    )


def resolve_parameters(target: TonalyticaTarget, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared parameter's value for a run: the override, else the mapping's default.

    Raises ValueError listing every problem: unknown names, values of the wrong type,
    and declared parameters left without a value (Redash would refuse the run).
    """
    problems: list[str] = []
    declared = target.parameter_types
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        problems.append(
            f"unknown parameter {', '.join(repr(n) for n in unknown)} (query #{target.query_id} declares: {known})"
        )
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, kind in declared.items():
        raw = overrides.get(name)
        if is_blank(kind, raw):
            raw = target.parameter_defaults.get(name)
        if is_blank(kind, raw):
            missing.append(name)
            continue
        try:
            values[name] = coerce_parameter(name, kind, raw, target.parameter_options.get(name, ()))
        except ValueError as exc:
            problems.append(str(exc))
    if missing:
        problems.append(f"no value for the required parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if problems:
        raise ValueError("; ".join(problems))
    return values
