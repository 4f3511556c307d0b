"""Plugin discovery, fault isolation, registries."""

import re
import sys
import types
from pathlib import Path

import pytest
import toy_plugin

import snnframe
from snnframe.errors import PluginError, RecipeError, UnknownComponent
from snnframe.kinds import NAMES as KINDS
from snnframe.plugins import load_plugins

REPO = Path(__file__).resolve().parents[1]


def plugin(name, **hooks):
    """A module-like plugin object whose hooks are the given functions."""
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        fn.__name__ = hook_name
        setattr(module, hook_name, snnframe.hookimpl(fn))
    return module


def neuron_plugin(name, *components):
    def register_neurons(register):
        for c in components:
            register(c, f"{name}_module:Neuron")

    return plugin(name, register_neurons=register_neurons)


def test_every_kind_has_a_registry(toy_plugins):
    assert set(toy_plugins.registries) == set(KINDS)
    assert toy_plugins.registry("neurons").names() == ["toy_lif"]
    entry = toy_plugins.registry("neurons").entry("toy_lif")
    assert (entry.plugin, entry.reference) == ("toy", "toy_plugin:ToyNeuron")


def test_lazy_reference_is_imported_on_first_use():
    sys.modules.pop("lazy_target_mod", None)
    plugins = load_plugins(extra=[("p", neuron_plugin("p", "lif"))], entry_points=False)
    entry = plugins.registry("neurons").entry("lif")
    assert "p_module" not in sys.modules
    with pytest.raises(PluginError) as info:
        entry.load()
    message = str(info.value)
    assert 'neuron "lif" from plugin "p" cannot be loaded from "p_module:Neuron"' in message
    assert "ModuleNotFoundError" in message


def test_unknown_name_lists_available_and_suggests(toy_plugins):
    registry = toy_plugins.registry("neurons")
    with pytest.raises(UnknownComponent) as info:
        registry.get("toy_lf")
    assert str(info.value) == 'unknown neuron "toy_lf" (did you mean "toy_lif"?); available: "toy_lif"'


def test_plugin_that_raises_in_a_hook_is_reported_and_others_still_load():
    def register_neurons(register):
        register("half", "x:y")  # registered before the failure: must not survive it
        raise RuntimeError("boom")

    bad = plugin("bad", register_neurons=register_neurons)
    good = neuron_plugin("good", "lif")
    plugins = load_plugins(extra=[("bad", bad), ("good", good)], entry_points=False)
    assert [p.name for p in plugins.failed] == ["bad"]
    assert plugins.failed[0].error == "RuntimeError: boom"
    assert plugins.registry("neurons").names() == ["lif"]
    assert [p.name for p in plugins.loaded] == ["good"]
    assert not plugins.manager.is_registered(bad)
    # a later unknown name points at the failed plugin
    with pytest.raises(UnknownComponent, match='plugin "bad" failed to load'):
        plugins.registry("neurons").get("half")


def test_misspelt_hook_fails_that_plugin_with_a_suggestion():
    def register_neuron(register):
        register("lif", "x:y")

    plugins = load_plugins(extra=[("typo", plugin("typo", register_neuron=register_neuron))], entry_points=False)
    assert [p.name for p in plugins.failed] == ["typo"]
    assert 'unknown hook "register_neuron" (did you mean "register_neurons"?)' in plugins.failed[0].error
    assert len(plugins.registry("neurons")) == 0


def test_bad_registration_arguments_fail_the_plugin():
    def register_losses(register):
        register("l", 42)

    plugins = load_plugins(extra=[("p", plugin("p", register_losses=register_losses))], entry_points=False)
    assert "factory must be callable" in plugins.failed[0].error

    def register_encoders(register):
        register("e", "not a reference")

    plugins = load_plugins(extra=[("q", plugin("q", register_encoders=register_encoders))], entry_points=False)
    assert 'must look like "package.module:attr"' in plugins.failed[0].error


def test_same_name_from_two_plugins_is_an_error_naming_both():
    with pytest.raises(PluginError) as info:
        load_plugins(
            extra=[("one", neuron_plugin("one", "lif")), ("two", neuron_plugin("two", "lif"))], entry_points=False
        )
    message = str(info.value)
    assert 'neuron "lif" is registered twice: by plugin "one"' in message
    assert 'by plugin "two"' in message and "SNNFRAME_DISABLE_PLUGINS=two" in message


def test_same_name_in_different_kinds_is_fine():
    def register_losses(register):
        register("lif", "m:f")

    both = load_plugins(
        extra=[("a", neuron_plugin("a", "lif")), ("b", plugin("b", register_losses=register_losses))],
        entry_points=False,
    )
    assert both.registry("neurons").names() == both.registry("losses").names() == ["lif"]


def test_disable_env_blocks_plugins(monkeypatch):
    monkeypatch.setenv("SNNFRAME_DISABLE_PLUGINS", "two, snnframe.losses")
    plugins = load_plugins(extra=[("one", neuron_plugin("one", "lif")), ("two", neuron_plugin("two", "lif"))])
    assert plugins.registry("neurons").entry("lif").plugin == "one"
    assert plugins.disabled == ["two", "snnframe.losses"]
    assert "snnframe.losses" not in [p.name for p in plugins.loaded]
    assert len(plugins.registry("losses")) == 0


def test_builtins_are_discovered_through_entry_points():
    plugins = load_plugins()
    names = {p.name for p in plugins.loaded}
    assert {
        "snnframe.datasets",
        "snnframe.encoders",
        "snnframe.neurons",
        "snnframe.models",
        "snnframe.losses",
        "snnframe.training",
        "snnframe.visualizers",
    } <= names
    info = next(p for p in plugins.loaded if p.name == "snnframe.training")
    assert (info.distribution, info.version) == ("snnframe", snnframe.__version__)


def test_discovery_imports_no_heavy_module():
    import subprocess

    code = (
        "import sys; from snnframe.plugins import load_plugins; load_plugins(); "
        "heavy = [m for m in ('torch', 'numpy', 'tonic', 'snntorch', 'matplotlib', 'torchvision') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_defaults_come_from_the_plugins_that_offer_them(toy_recipe, tmp_path):
    from snnframe.run import prepare

    def offers(name, default=True):
        return plugin(
            f"offers_{name}", register_losses=lambda register: register(name, toy_plugin.toy_loss, default=default)
        )

    text = toy_recipe.read_text().replace('[train.loss]\nkind = "toy_loss"\n', "")
    recipe = tmp_path / "no_loss.toml"
    recipe.write_text(text)
    one = load_plugins(extra=[("toy", toy_plugin), ("a", offers("mine"))], entry_points=False)
    assert prepare(recipe, plugins=one).recipe.table("train.loss").kind == "mine"  # written out, resolved

    none = load_plugins(extra=[("toy", toy_plugin)], entry_points=False)
    with pytest.raises(
        RecipeError,
        match=r"train\.loss\.kind: missing; no installed plugin offers a default loss: "
        r'name one \(available: "toy_loss"\)',
    ):
        prepare(recipe, plugins=none)

    two = load_plugins(extra=[("toy", toy_plugin), ("a", offers("mine")), ("b", offers("theirs"))], entry_points=False)
    with pytest.raises(
        RecipeError,
        match=r'several plugins offer a default loss \("mine" \(plugin "a"\), '
        r'"theirs" \(plugin "b"\)\): name one',
    ):
        prepare(recipe, plugins=two)


def test_only_kinds_with_defaults_accept_default_true():
    bad = plugin("bad", register_datasets=lambda register: register("d", "m:f", default=True))
    plugins = load_plugins(extra=[("bad", bad)], entry_points=False)
    assert 'dataset "d" cannot be a default' in plugins.failed[0].error


def test_disabling_the_builtin_losses_leaves_no_loss_and_no_default(monkeypatch, tmp_path):
    from snnframe.run import prepare

    monkeypatch.setenv("SNNFRAME_DISABLE_PLUGINS", "snnframe.losses")
    recipe = tmp_path / "q.toml"
    text = (REPO / "recipes" / "quickstart.toml").read_text()
    recipe.write_text(re.sub(r"\[train\.loss\]\n(.+\n)+", "", text))
    with pytest.raises(RecipeError) as info:
        prepare(recipe, plugins=load_plugins())
    assert "train.loss.kind: missing; no installed plugin offers a default loss" in str(info.value)
