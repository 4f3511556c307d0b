"""Helpers shared by the tests (``tests/`` is on ``sys.path``: ``from helpers.data_files import ...``)."""
