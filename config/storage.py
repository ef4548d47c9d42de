"""The ``STORAGES["default"]`` entry for S3-compatible object storage, built from environment variables.

One function for settings and tests, so what the tests run against is what production configures.
AWS S3 and MinIO differ only by ``PORTAL_S3_ENDPOINT_URL`` and ``PORTAL_S3_ADDRESSING_STYLE``
(docs/deploy.md lists every variable). https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

S3_BACKEND = "storages.backends.s3.S3Storage"
ADDRESSING_STYLES = ("auto", "path", "virtual")


def s3_storage(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The S3 storage entry when ``PORTAL_S3_BUCKET`` is set, else None (keep the filesystem)."""
    bucket = environ.get("PORTAL_S3_BUCKET", "").strip()
    if not bucket:
        return None
    style = environ.get("PORTAL_S3_ADDRESSING_STYLE", "").strip() or "auto"
    if style not in ADDRESSING_STYLES:
        raise ImproperlyConfigured(f"PORTAL_S3_ADDRESSING_STYLE must be one of {', '.join(ADDRESSING_STYLES)}")
    options: dict[str, Any] = {
        "bucket_name": bucket,
        # Empty for AWS (the regional endpoint); http(s)://host:port for MinIO and other S3 servers.
        "endpoint_url": environ.get("PORTAL_S3_ENDPOINT_URL", "").strip() or None,
        "region_name": environ.get("PORTAL_S3_REGION", "").strip() or None,
        # MinIO wants "path" (bucket in the path); AWS accepts "virtual" (bucket in the host name) and "auto".
        "addressing_style": style,
        "signature_version": "s3v4",
        # Every object under this prefix, so one bucket can hold several installations.
        "location": environ.get("PORTAL_S3_LOCATION", "").strip().strip("/"),
        # Two uploads with the same name must not replace each other: the storage picks a free name.
        "file_overwrite": False,
        # Objects stay private; the portal reads them with its keys and never hands out URLs.
        "default_acl": None,
        "querystring_auth": True,
        # Reads of large files spill to a temporary file instead of memory.
        "max_memory_size": 8 * 1024 * 1024,
    }
    access_key = environ.get("PORTAL_S3_ACCESS_KEY_ID", "").strip()
    secret_key = environ.get("PORTAL_S3_SECRET_ACCESS_KEY", "").strip()
    if bool(access_key) != bool(secret_key):
        raise ImproperlyConfigured("Set both PORTAL_S3_ACCESS_KEY_ID and PORTAL_S3_SECRET_ACCESS_KEY, or neither")
    if access_key:
        # Without keys boto3 uses its own chain: an instance or task role, AWS_* variables, ~/.aws.
        options["access_key"], options["secret_key"] = access_key, secret_key
    return {"BACKEND": S3_BACKEND, "OPTIONS": options}
