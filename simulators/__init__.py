"""Simulators of the external platforms, for demos and tests (see simulators/core.py)."""
