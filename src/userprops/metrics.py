"""Counters for ``GET /metrics``, in Prometheus' text format (version 0.0.4).

In-memory, per process: with several API processes, scrape each one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass
class Metrics:
    responses: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    def observe(self, route: str, method: str, status: int) -> None:
        """Count one answer; ``route`` is a known path or ``unmatched``. Labels stay few
        whatever clients send: unknown paths and methods are folded."""
        if method not in _METHODS:
            method = "OTHER"
        self.responses[(route, method, status)] += 1

    def render(self, batches: int, jobs: int) -> str:
        lines = [
            "# HELP userprops_http_responses_total HTTP answers by route, method and status.",
            "# TYPE userprops_http_responses_total counter",
        ]
        for (route, method, status), count in sorted(self.responses.items()):
            lines.append(
                f'userprops_http_responses_total{{route="{route}",method="{method}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP userprops_writer_batches_total Transactions committed by the writer.",
            "# TYPE userprops_writer_batches_total counter",
            f"userprops_writer_batches_total {batches}",
            "# HELP userprops_writer_jobs_total Requests run by the writer, in any batch.",
            "# TYPE userprops_writer_jobs_total counter",
            f"userprops_writer_jobs_total {jobs}",
        ]
        return "\n".join(lines) + "\n"
