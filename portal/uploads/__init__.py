"""Resumable uploads: the tus 1.0 server, its storage sinks and the expiry of abandoned uploads.

See docs/uploads.md."""
