"""Named registries: how a name given on the command line or in a config finds the code that builds it.

One rule for every registry of the package (the model zoo's variants and losses, the pipeline's
detectors, embedders and trackers):

- a name is registered once: the same object again (a module imported twice) is a no-op, another
  object under a name already taken raises :class:`ConfigError` naming both;
- an unknown name raises :class:`ConfigError` naming the option, the value and every known name;
- ``traits`` carry what a caller must know of an entry before building it (an embedder's file
  suffixes, whether it releases the GIL), so no caller keeps its own list of names.

A registry whose entries live in modules of their own imports them on first use (``loader``): the
model zoo's variants register themselves when ``reidpipe.reid.variants`` is imported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from reidpipe.errors import ConfigError

T = TypeVar("T")
F = TypeVar("F")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    description: str = ""
    traits: Mapping[str, Any] = field(default_factory=dict)


def _same(a: Any, b: Any) -> bool:
    """One object, or the same definition imported again (a re-imported module makes a new object)."""
    return a is b or getattr(a, "__qualname__", a) == getattr(b, "__qualname__", b)


def _shown(value: Any) -> str:
    return getattr(value, "__qualname__", None) or repr(value)


class Registry(Generic[T]):
    """Entries by name, in the order they were registered. ``option`` is how a user names the choice
    (``--tracker``, ``model variant``): every error message starts with it."""

    def __init__(self, option: str, loader: Callable[[], None] | None = None):
        self.option = option
        self._entries: dict[str, Entry[T]] = {}
        self._loader = loader
        self._loaded = loader is None
        self._lock = threading.RLock()

    def add(self, name: str, value: T, description: str = "", **traits: Any) -> T:
        """Register ``value`` under ``name`` (see the module docstring); returns ``value``."""
        with self._lock:
            old = self._entries.get(name)
            if old is not None and not _same(old.value, value):
                raise ConfigError(f"{self.option} {name!r} is already registered by {_shown(old.value)}")
            self._entries[name] = Entry(name, value, str(description), dict(traits))
        return value

    def register(self, name: str, description: str = "", **traits: Any) -> Callable[[F], F]:
        """``@registry.register("name")`` above a builder or class."""

        def decorate(value: F) -> F:
            self.add(name, value, description, **traits)  # type: ignore[arg-type]
            return value

        return decorate

    def discard(self, name: str) -> None:
        """Forget ``name`` (a test's temporary entry)."""
        with self._lock:
            self._entries.pop(name, None)

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded and self._loader is not None:
                self._loader()
                self._loaded = True

    def entry(self, name: str) -> Entry[T]:
        self._load()
        found = self._entries.get(name)
        if found is None:
            known = ", ".join(self._entries) or "(none registered)"
            raise ConfigError(f"{self.option} must be one of {known}, got {name!r}")
        return found

    def get(self, name: str) -> T:
        return self.entry(name).value

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        self._load()
        return list(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        self._load()
        return iter(list(self._entries.values()))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries
