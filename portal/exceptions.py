"""Errors that services raise for views and APIs to show (HackSoft's ApplicationError)."""

from __future__ import annotations


class ApplicationError(Exception):
    """A request that cannot be done, with a message for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
