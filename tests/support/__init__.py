"""Plain helpers of the test suite, imported by tests and by conftest.py files.

Fixtures live in conftest.py files; nothing here is a fixture, and nothing imports from
a conftest.py or a ``test_*`` module.
"""
