"""Counters for ``GET /metrics``, in Prometheus' text format (version 0.0.4).

In-memory, per process: with several API processes, scrape each one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from userprops.batcher import Batcher

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# The batching threads: what one of their batches is, and what one of their jobs is.
_BATCHERS = {
    "writer": ("Transactions committed by the writer.", "Requests run by the writer"),
    "reader": ("Statements the reader ran for GET /v1/user/property.", "Reads it answered"),
}


@dataclass
class Metrics:
    responses: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    def observe(self, route: str, method: str, status: int) -> None:
        """Count one answer; ``route`` is a known path or ``unmatched``. Labels stay few
        whatever clients send: unknown paths and methods are folded."""
        if method not in _METHODS:
            method = "OTHER"
        self.responses[(route, method, status)] += 1

    def render(self, batchers: dict[str, Batcher[Any]]) -> str:
        """The counters, with those of the ``writer`` and ``reader`` batching threads."""
        lines = [
            "# HELP userprops_http_responses_total HTTP answers by route, method and status.",
            "# TYPE userprops_http_responses_total counter",
        ]
        for (route, method, status), count in sorted(self.responses.items()):
            lines.append(
                f'userprops_http_responses_total{{route="{route}",method="{method}",'
                f'status="{status}"}} {count}'
            )
        for name, (batch_help, job_help) in _BATCHERS.items():
            batcher = batchers[name]
            lines += [
                f"# HELP userprops_{name}_batches_total {batch_help}",
                f"# TYPE userprops_{name}_batches_total counter",
                f"userprops_{name}_batches_total {batcher.batches}",
                f"# HELP userprops_{name}_jobs_total {job_help}, in any batch.",
                f"# TYPE userprops_{name}_jobs_total counter",
                f"userprops_{name}_jobs_total {batcher.jobs}",
            ]
        return "\n".join(lines) + "\n"
