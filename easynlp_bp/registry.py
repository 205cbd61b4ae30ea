"""A small name -> class registry for the things a user chooses by name (apps, scorers, teachers).

Exact lookup; a miss lists what exists and the closest match; registering a name twice fails.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects.

    Example:
        >>> APPS = Registry("app")
        >>> @APPS.register("echo")
        ... class Echo: ...
        >>> APPS.get("echo") is Echo
        True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under ``name``; a duplicate name raises ``KeyError``."""

        def decorator(obj: T) -> T:
            if name in self._items:
                raise KeyError(
                    f"{self.kind} {name!r} is already registered (by {self._items[name]!r}); "
                    "choose another name."
                )
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; raise ``KeyError`` with a suggestion if unknown."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(
                f"Unknown {self.kind} {name!r}.{hint} Registered: {', '.join(sorted(self._items))}."
            ) from None

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
