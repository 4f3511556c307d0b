"""One registry per component kind; entries may be lazy ``"package.module:attr"`` references."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from snnframe.errors import PluginError, UnknownComponent, did_you_mean
from snnframe.kinds import singular

DISABLE_ENV = "SNNFRAME_DISABLE_PLUGINS"


@attrs.define
class Entry:
    """A registered component: where it came from and how to build it."""

    kind: str
    name: str
    target: Callable[..., Any] | str  # a factory, or a lazy "package.module:attr" reference
    plugin: str
    distribution: str | None = None
    version: str | None = None
    default: bool = False  # offered as the kind's default (used when a recipe leaves the kind out)
    _loaded: Callable[..., Any] | None = attrs.field(default=None, repr=False)

    @property
    def reference(self) -> str:
        """``package.module:attr`` of the factory (without importing it when lazy)."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    def load(self) -> Callable[..., Any]:
        """The factory, importing a lazy reference on first use."""
        if self._loaded is None:
            self._loaded = self.target if callable(self.target) else _import_reference(self)
        return self._loaded


def _import_reference(entry: Entry) -> Callable[..., Any]:
    module_name, _, attr_path = str(entry.target).partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # the plugin's own import failed: say whose
        raise PluginError(
            f'{singular(entry.kind)} "{entry.name}" from plugin "{entry.plugin}" cannot be loaded '
            f'from "{entry.target}": {type(exc).__name__}: {exc}'
        ) from exc
    if not callable(obj):
        raise PluginError(
            f'{singular(entry.kind)} "{entry.name}" from plugin "{entry.plugin}": "{entry.target}" is not callable'
        )
    return obj


def check_target(target: Any) -> str | None:
    """Why ``target`` cannot be registered, or ``None`` if it can."""
    if callable(target):
        return None
    if isinstance(target, str):
        module, sep, attr = target.partition(":")
        if sep and module and attr and all(p.isidentifier() for p in module.split(".") + attr.split(".")):
            return None
        return f'lazy reference "{target}" must look like "package.module:attr"'
    return f'factory must be callable or a "package.module:attr" string, got {type(target).__name__}'


class Registry:
    """Components of one kind, by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        # plugin name -> load error, so an unknown name can mention a plugin that failed
        self.failed_plugins: dict[str, str] = {}
        # what SNNFRAME_DISABLE_PLUGINS blocks (plugins.DisabledOffers), so an unknown name can say so
        self.disabled: Any = None

    def add(self, entry: Entry) -> None:
        first = self._entries.get(entry.name)
        if first is not None:
            raise PluginError(
                f'{singular(self.kind)} "{entry.name}" is registered twice: by plugin "{first.plugin}"'
                f'{_dist(first)} and by plugin "{entry.plugin}"{_dist(entry)}. '
                f"Uninstall one, or block one with SNNFRAME_DISABLE_PLUGINS={entry.plugin}"
            )
        self._entries[entry.name] = entry

    def drop_plugin(self, plugin: str) -> None:
        """Forget what ``plugin`` registered (it failed after its components were added)."""
        self._entries = {name: e for name, e in self._entries.items() if e.plugin != plugin}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponent(self.unknown_message(name)) from None

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name`` (imported now if it was lazy)."""
        return self.entry(name).load()

    def defaults(self) -> list[Entry]:
        """The components offered as this kind's default (``register(..., default=True)``)."""
        return [e for e in self if e.default]

    def default_name(self) -> tuple[str | None, str]:
        """``(name, "")`` of the one offered default, else ``(None, why there is none)``."""
        offered = self.defaults()
        if len(offered) == 1:
            return offered[0].name, ""
        what = singular(self.kind)
        if offered:
            names = ", ".join(f'"{e.name}" (plugin "{e.plugin}")' for e in offered)
            return None, f"several plugins offer a default {what} ({names}): name one"
        blocked = self.disabled.defaults(self.kind) if self.disabled is not None else []
        if blocked:
            plugin, name = blocked[0]
            return None, (
                f'no installed plugin offers a default {what}: the default {what} "{name}" comes from plugin '
                f"{plugin}, which {DISABLE_ENV} disables; enable it again or name a {what} ({self.available()})"
            )
        return None, f"no installed plugin offers a default {what}: name one ({self.available()})"

    def available(self) -> str:
        return "available: " + (", ".join(f'"{n}"' for n in self.names()) or "none")

    def unknown_message(self, name: object) -> str:
        what = singular(self.kind)
        plugin = self.disabled.offering(self.kind, str(name)) if self.disabled is not None else None
        if plugin is not None:
            now = os.environ.get(DISABLE_ENV, "")
            return (
                f'{what} "{name}" comes from plugin {plugin}, which {DISABLE_ENV} disables ({DISABLE_ENV}="{now}"); '
                f"remove {plugin} from it, or choose another {what} ({self.available()})"
            )
        msg = f'unknown {what} "{name}"{did_you_mean(str(name), self.names())}; {self.available()}'
        for plugin, error in self.failed_plugins.items():
            msg += f'; note: plugin "{plugin}" failed to load ({error})'
        return msg


def _dist(entry: Entry) -> str:
    if entry.distribution:
        return f" ({entry.distribution} {entry.version})"
    return ""
