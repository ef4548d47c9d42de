"""A real S3-speaking server in a process of its own on loopback: moto in server mode.

It stands in for MinIO or AWS S3 (neither can be installed here). The storage tests, the
Celery worker fixture and the multi-host rehearsal all talk to it over HTTP through
django-storages and boto3, exactly as they would to MinIO; nothing is mocked in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx

from .simulator import free_port

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


class S3Server:
    """``moto_server`` on a free loopback port with one bucket; ``env()`` is what a process needs to use it."""

    access_key = "test-access-key"
    secret_key = "test-secret-key"  # noqa: S105 - moto accepts any key; this is no secret
    region = "us-east-1"

    def __init__(self, bucket: str = "portal-test") -> None:
        self.bucket = bucket
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.tmpdir = tempfile.mkdtemp(prefix="moto-")  # moto spills large objects to temporary files
        self.log = open(Path(self.tmpdir) / "moto.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, "TMPDIR": self.tmpdir, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.endpoint_url + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    raise RuntimeError("moto_server exited: " + (Path(self.tmpdir) / "moto.log").read_text()) from None
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("moto_server did not start in 30 s")
        self.client().create_bucket(Bucket=bucket)

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def env(self, *, location: str = "") -> dict[str, str]:
        """The environment variables that point the portal's settings at this server."""
        return {
            "PORTAL_S3_BUCKET": self.bucket,
            "PORTAL_S3_ENDPOINT_URL": self.endpoint_url,
            "PORTAL_S3_REGION": self.region,
            "PORTAL_S3_ACCESS_KEY_ID": self.access_key,
            "PORTAL_S3_SECRET_ACCESS_KEY": self.secret_key,
            "PORTAL_S3_ADDRESSING_STYLE": "path",
            "PORTAL_S3_LOCATION": location,
        }

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
