from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from portal import tokens


@pytest.fixture
def api():
    """An API client; ``api.as_user(user)`` authenticates it with a fresh personal token."""
    client = APIClient()

    def as_user(user):
        _token, key = tokens.token_create(user=user, name="test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        client.key = key
        return client

    client.as_user = as_user
    return client
