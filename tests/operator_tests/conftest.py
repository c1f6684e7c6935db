"""Fixtures of the operator tests (defined in support.py)."""

from operator_tests.support import crd, env

__all__ = ["crd", "env"]
