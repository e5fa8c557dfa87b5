"""userprops: a self-hosted store of end-user attributes for marketing automation."""

from __future__ import annotations

__version__ = "0.1.0"
