"""The real-consumer ``queue`` fixture (defined with the worker tests) for every module here."""

from tests.tasks.test_worker import queue  # noqa: F401
