"""The admin console (docs/console.md): server-rendered pages under ``/admin`` for
operators, with their templates and static files. :mod:`userprops.http.app` hands every
``/admin`` request to :class:`userprops.console.app.Console`; ``userprops operator ...``
is in :mod:`userprops.console.commands`."""
