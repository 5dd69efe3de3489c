"""A registry of named classes (avatar methods, generators) with the options each declares per command: one
place that says which names exist, which options a command has in all, and that no two classes declare one
option differently."""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from headsplat.avatar.options import Option
from headsplat.core.errors import ArgumentError

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes of one kind by name; the built-in ones are imported on the first look-up.

    Args:
        kind: "method", "generator" (in messages).
        base: the class every entry derives from.
        param: the parameter that names an entry (``method``, ``model``), for :class:`ArgumentError`.
        builtin_modules: modules whose import registers the built-in entries.
        default: the entry listed first.
        commands: the commands entries may declare options for.
    """

    def __init__(self, kind: str, base: type, param: str, builtin_modules: tuple[str, ...], default: str,
                 commands: tuple[str, ...]):
        self.kind, self.base, self.param = kind, base, param
        self.builtin_modules, self.default, self.commands = builtin_modules, default, commands
        self._entries: dict[str, type[T]] = {}
        self._imported = False

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: make ``cls`` the entry called ``cls.name``.

        Raises:
            TypeError: ``cls`` is not of this registry's kind. ValueError: the name is taken by another class,
                options for an unknown command, or an option declared differently from another entry's.
        """
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{cls!r} is not a {self.base.__name__}")
        unknown = set(cls.options) - set(self.commands)
        if unknown:
            raise ValueError(f"{self.kind} {cls.name}: options for unknown commands {sorted(unknown)}")
        previous = self._entries.get(cls.name)
        if previous is not None and previous.__qualname__ != cls.__qualname__:
            raise ValueError(f"{self.kind} {cls.name!r} is registered already "
                             f"({previous.__module__}.{previous.__qualname__})")
        self._entries[cls.name] = cls
        try:
            for command in cls.options:
                self.command_options(command)
        except ValueError:
            del self._entries[cls.name]
            raise
        return cls

    def entries(self) -> dict[str, type[T]]:
        if not self._imported:
            self._imported = True
            # Imported here, not at the top: each built-in entry's module imports its base class, which holds
            # this registry.
            for module in self.builtin_modules:
                importlib.import_module(module)
        return self._entries

    def names(self) -> tuple[str, ...]:
        """The registered names, the default first."""
        return tuple(sorted(self.entries(), key=lambda n: (n != self.default, n)))

    def get(self, name: str) -> type[T]:
        """The entry called ``name``; :class:`ArgumentError` naming the ones there are."""
        entries = self.entries()
        if name not in entries:
            raise ArgumentError(self.param, f"unknown {self.kind} {name!r}; choose {', '.join(self.names())}")
        return entries[name]

    def command_options(self, command: str) -> dict[str, Option]:
        """Every option any entry takes for ``command``, by name.

        Raises:
            ValueError: two entries declare an option of the same name differently.
        """
        out: dict[str, Option] = {}
        for cls in list(self.entries().values()):
            for o in cls.options.get(command, ()):
                if o.name in out and out[o.name] != o:
                    raise ValueError(f"option {o.name!r} of {command!r} is declared differently by two "
                                     f"{self.kind}s")
                out[o.name] = o
        return out
