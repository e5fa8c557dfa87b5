"""Every route of the console: the pages of :mod:`userprops.console.pages`, then those of
the modules that add a project's tabs (segments, webhooks)."""

from __future__ import annotations

from userprops.console import pages, segment_pages, webhook_pages

ROUTES = (*pages.ROUTES, *segment_pages.ROUTES, *webhook_pages.ROUTES)
