"""Settings of the portal that bench/tus_upload.py runs under gunicorn: the test settings,
static files served by WhiteNoise from the finders, and S3 storage (moto) when asked."""

from config.settings.test import *  # noqa: F403
from config.settings.test import STORAGES, env

WHITENOISE_USE_FINDERS = True
if env.str("BENCH_S3_ENDPOINT", default=""):
    STORAGES = {
        **STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env.str("BENCH_S3_BUCKET"),
                "endpoint_url": env.str("BENCH_S3_ENDPOINT"),
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "file_overwrite": False,
            },
        },
    }
