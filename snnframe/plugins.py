"""Plugin discovery: entry points of the group ``snnframe``, one pluggy manager.

A plugin either loads completely or not at all: one that fails to import, uses a hook
name that does not exist or raises in a hook is recorded in ``Plugins.failed`` (and
warned about by the CLI) while the others keep working.
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import inspect
import os
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from snnframe import hookspecs
from snnframe.kinds import BY_NAME, KINDS, NAMES
from snnframe.registry import DISABLE_ENV, Entry, Registry, check_target

ENTRY_POINT_GROUP = "snnframe"


@attrs.define
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None  # set when the plugin failed to load

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version}" if self.distribution else "not from a distribution"


@attrs.define
class Plugins:
    """The loaded plugins and the registries they filled."""

    manager: pluggy.PluginManager
    registries: dict[str, Registry]
    loaded: list[PluginInfo]
    failed: list[PluginInfo]
    disabled: list[str]
    # names in SNNFRAME_DISABLE_PLUGINS that match no plugin (a typo disables nothing: warned about)
    unknown_disabled: list[str] = attrs.field(factory=list)
    known: list[str] = attrs.field(factory=list)  # every plugin name found, disabled ones included

    def registry(self, kind: str) -> Registry:
        return self.registries[kind]

    def add_commands(self, cli: Any) -> None:
        """Let plugins add click commands (``register_commands(cli)``).

        Each plugin adds them to a group of its own, copied to ``cli`` only if it returns: one that
        raises adds no command and loses its components too, as a plugin that fails to load.
        """
        import click

        for impl in self.manager.hook.register_commands.get_hookimpls():
            scratch = click.Group(cli.name)
            try:
                impl.function(**{arg: scratch for arg in impl.argnames})
            except Exception as exc:
                self._fail(impl.plugin_name, f"register_commands: {type(exc).__name__}: {exc}")
                continue
            for name, command in scratch.commands.items():
                cli.add_command(command, name)

    def _fail(self, name: str, error: str) -> None:
        info = next((p for p in self.loaded if p.name == name), PluginInfo(name))
        self.loaded = [p for p in self.loaded if p.name != name]
        self.failed.append(attrs.evolve(info, error=error))
        for registry in self.registries.values():
            registry.drop_plugin(name)
            registry.failed_plugins[name] = error


def disabled_plugins() -> list[str]:
    value = os.environ.get(DISABLE_ENV, "")
    return [name.strip() for name in value.split(",") if name.strip()]


class DisabledOffers:
    """What the plugins ``SNNFRAME_DISABLE_PLUGINS`` blocks would register, looked up only when asked.

    Used on the error path alone (a recipe names a component no loaded plugin has), so a disabled
    plugin is still never imported for a run that does not need it; one that fails to import offers nothing.
    """

    def __init__(self, sources: dict[str, Any]):
        self.sources = sources  # plugin name -> entry point or module
        self._entries: dict[str, list[tuple[str, str, bool]]] | None = None

    def entries(self, kind: str) -> list[tuple[str, str, bool]]:
        """``(plugin, component name, offered as default)`` for ``kind``."""
        if self._entries is None:
            self._entries = {name: [] for name in NAMES}
            for plugin, source in self.sources.items():
                self._collect(plugin, source)
        return self._entries.get(kind, [])

    def _collect(self, plugin: str, source: Any) -> None:
        try:
            module = source.load() if isinstance(source, metadata.EntryPoint) else source
        except Exception:
            return
        for kind in KINDS:
            hook = getattr(module, kind.hook, None)
            if not callable(hook):
                continue

            def register(name: str, factory: Any = None, *, default: bool = False, _kind: str = kind.name) -> None:
                self._entries[_kind].append((plugin, str(name), bool(default)))

            try:
                hook(**{name: register for name in inspect.signature(hook).parameters})
            except Exception:
                continue

    def offering(self, kind: str, name: str) -> str | None:
        """The disabled plugin that would register ``name``, if any."""
        return next((plugin for plugin, n, _ in self.entries(kind) if n == name), None)

    def defaults(self, kind: str) -> list[tuple[str, str]]:
        """``(plugin, name)`` of the defaults disabled plugins would offer."""
        return [(plugin, n) for plugin, n, default in self.entries(kind) if default]


def load_plugins(extra: Iterable[tuple[str, object]] = (), entry_points: bool = True) -> Plugins:
    """Discover plugins from entry points (plus ``extra`` ``(name, plugin)`` pairs) and fill the registries."""
    manager = pluggy.PluginManager("snnframe")
    manager.add_hookspecs(hookspecs)
    disabled = disabled_plugins()
    for name in disabled:
        manager.set_blocked(name)

    candidates: list[tuple[PluginInfo, Any]] = []
    sources: dict[str, Any] = {}  # every plugin found, by name, disabled ones included
    if entry_points:
        candidates += _entry_point_candidates(disabled, sources)
    for name, obj in extra:
        sources.setdefault(name, obj)
        if name not in disabled:
            candidates.append((PluginInfo(name), obj))

    plugins = Plugins(manager, {name: Registry(name) for name in NAMES}, [], [], disabled)
    plugins.known = sorted(sources)
    plugins.unknown_disabled = [name for name in disabled if name not in sources]
    offers = DisabledOffers({name: sources[name] for name in disabled if name in sources})
    for info, obj in candidates:
        entries = _load_one(manager, info, obj)
        if info.error is not None:
            plugins.failed.append(info)
            continue
        for entry in entries:
            plugins.registries[entry.kind].add(entry)  # a name taken by another plugin raises PluginError
        plugins.loaded.append(info)

    for registry in plugins.registries.values():
        registry.failed_plugins = {p.name: p.error or "" for p in plugins.failed}
        registry.disabled = offers
    return plugins


def _entry_point_candidates(disabled: list[str], sources: dict[str, Any]) -> list[tuple[PluginInfo, Any]]:
    """Entry points to load: snnframe's own first, then the others by name (a stable order).

    ``sources`` gets every entry point by name, the disabled ones too (not loaded).
    """
    seen: set[str] = set()
    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        sources.setdefault(ep.name, ep)
        if ep.name in disabled or ep.name in seen:  # editable installs can list a dist twice
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.metadata["Name"] if dist else None, dist.version if dist else None)
        found.append((info, ep))
    return sorted(found, key=lambda item: (item[0].distribution != "snnframe", item[0].name))


def _load_one(manager: pluggy.PluginManager, info: PluginInfo, obj: Any) -> list[Entry]:
    """Import and register one plugin; on failure set ``info.error`` and leave no trace of it."""
    module = None
    try:
        module = obj.load() if isinstance(obj, metadata.EntryPoint) else obj
        return _collect(manager, info, module)
    except Exception as exc:
        info.error = f"{type(exc).__name__}: {exc}"
        if module is not None and manager.is_registered(module):
            manager.unregister(module)
        return []


def _collect(manager: pluggy.PluginManager, info: PluginInfo, module: object) -> list[Entry]:
    """Register ``module`` with pluggy and run its register_* hooks, returning what it registers."""
    manager.register(module, name=info.name)
    _check_hook_names(manager, info.name)
    entries: list[Entry] = []
    for kind in KINDS:
        for impl in getattr(manager.hook, kind.hook).get_hookimpls():
            if impl.plugin_name != info.name:
                continue

            def register(name: str, factory: Any, *, default: bool = False, _kind: str = kind.name) -> None:
                problem = check_target(factory)
                if not isinstance(name, str) or not name:
                    problem = f"component name must be a non-empty string, got {name!r}"
                if default and not BY_NAME[_kind].has_default:
                    problem = f'{BY_NAME[_kind].singular} "{name}" cannot be a default: recipes always name one'
                if problem:
                    raise ValueError(f"register_{_kind}: {problem}")
                entries.append(Entry(_kind, name, factory, info.name, info.distribution, info.version, bool(default)))

            impl.function(**{arg: register for arg in impl.argnames})
    return entries


def _check_hook_names(manager: pluggy.PluginManager, plugin_name: str) -> None:
    """A misspelt hook is an error, not a silent no-op (pluggy's check_pending, per plugin)."""
    specs = [name for name in dir(hookspecs) if name.startswith("register_")]
    for name, caller in vars(manager.hook).items():
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin_name == plugin_name and not impl.optionalhook:
                close = difflib.get_close_matches(name, specs, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                raise pluggy.PluginValidationError(
                    impl.plugin, f'unknown hook "{name}"{hint}; hooks are: {", ".join(specs)}'
                )
