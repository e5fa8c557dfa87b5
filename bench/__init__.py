"""The shipped benchmark: ``scripts/bench`` (``python -m bench``).

It starts ``userprops serve`` on a fresh database, drives it with wrk over keep-alive
connections, measures a bare ASGI ceiling on the same server stack in the same run, checks
that no acknowledged ``increase`` was lost, and writes a JSON report. See
docs/performance.md.
"""
