from __future__ import annotations

from userprops.cli import main

main()
