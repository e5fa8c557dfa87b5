"""Types of attributes and event properties: a cache of the types learned, and the one way
an undefined name gets its type from its first value (docs/schema.md, "Schema mode").

Used alike by user attributes (:mod:`userprops.properties`) and event properties
(:mod:`userprops.events`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from userprops.schema import AttrType, Rejected, infer_type

T = TypeVar("T")


class TypeCache:
    """Per project, types read or defined: positive entries only, since a defined type never
    changes, so they never go stale. Jobs read :meth:`known` in the writer thread; only
    what a committed batch learned is added (:meth:`learn`), on the event loop."""

    def __init__(self) -> None:
        self._known: dict[int, dict[str, AttrType]] = {}

    def known(self, project_id: int) -> dict[str, AttrType]:
        """The types learned for a project; the caller must not change it."""
        return self._known.get(project_id, {})

    def learn(self, project_id: int, types: Mapping[str, AttrType]) -> None:
        if types:
            self._known.setdefault(project_id, {}).update(types)


def define_from_values(
    values: Mapping[str, Any],
    check: Callable[[AttrType, Any], T],
    define: Callable[[str, AttrType], AttrType],
    *,
    required: AttrType | None = None,
) -> dict[str, tuple[AttrType, T]]:
    """Define each name of ``values`` (all undefined) with a type read from its value:
    ``required`` when the operation needs one, else :func:`~userprops.schema.infer_type`.

    Every value is checked against its type (``check`` raises :class:`Rejected`) before
    any is defined, so a rejected value defines nothing. ``define(name, kind)`` then
    defines it and returns the type the name has now: when another writer defined it
    with another type meanwhile, :class:`Rejected`. A :class:`Rejected` raised here names
    the value at fault (``name``). Returns each name's type and what ``check`` gave.
    """
    kinds: dict[str, tuple[AttrType, T]] = {}
    for name, raw in values.items():
        kind = required or infer_type(raw)
        try:
            if kind is None:
                raise Rejected("cannot infer a type from a JSON object")
            checked = check(kind, raw)
        except Rejected as reason:
            reason.name = name
            raise
        kinds[name] = (kind, checked)
    for name, (kind, _) in kinds.items():
        actual = define(name, kind)
        if actual is not kind:
            raise Rejected(f"{name} was defined as {actual} meanwhile", name=name)
    return kinds
