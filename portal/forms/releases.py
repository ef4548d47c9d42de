"""Upload and release forms."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from portal.models import Upload


class UploadForm(forms.Form):
    file = forms.FileField()


def _upload_label(obj: Upload) -> str:
    return f"{obj.original_name} — {obj.size:,} bytes, {obj.created_at:%Y-%m-%d %H:%M}"


class ReleaseForm(forms.Form):
    """The common part of a release form; the platform's parameters come from a SchemaForm."""

    upload = forms.ModelChoiceField(queryset=Upload.objects.none(), required=False, empty_label="— no file —")
    # A token rendered into the form: submitting it twice returns the first release.
    submission_token = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args: Any, uploads: Any = None, **kwargs: Any):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("submission_token", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        upload_field = self.fields["upload"]
        assert isinstance(upload_field, forms.ModelChoiceField)  # noqa: S101 - declared so above
        if uploads is not None:
            upload_field.queryset = uploads
            first = uploads.first()
            if first is not None:
                upload_field.initial = first.pk
        upload_field.label_from_instance = _upload_label  # type: ignore[method-assign]  # Django's documented hook
