"""Upload and release forms."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from portal.models import Upload


class UploadForm(forms.Form):
    file = forms.FileField()


class ReleaseForm(forms.Form):
    """The common part of a release form; the platform's parameters come from a SchemaForm."""

    upload = forms.ModelChoiceField(queryset=Upload.objects.none(), required=False, empty_label="— no file —")
    # A token rendered into the form: submitting it twice returns the first release.
    submission_token = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args: Any, uploads: Any = None, **kwargs: Any):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("submission_token", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        if uploads is not None:
            self.fields["upload"].queryset = uploads
            first = uploads.first()
            if first is not None:
                self.fields["upload"].initial = first.pk
        self.fields["upload"].label_from_instance = lambda u: (
            f"{u.original_name} — {u.size:,} bytes, {u.created_at:%Y-%m-%d %H:%M}"
        )
