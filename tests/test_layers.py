"""The ``layers`` architecture: the seed's notation, the table form, csnn equivalence, bad specs, the engine's paths."""

import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from snnframe.builtins.models.csnn import csnn
from snnframe.builtins.models.layers import FC, Conv, LayerNetwork, Pool, SumPool2d, layers, parse_spec
from snnframe.builtins.models.mlp import mlp
from snnframe.builtins.neurons.leaky import Leaky
from snnframe.builtins.neurons.recurrent import RLeaky
from snnframe.builtins.neurons.synaptic import Synaptic
from snnframe.cli import make_cli
from snnframe.engine import sparse_conv
from snnframe.errors import ParameterError
from snnframe.plugins import load_plugins
from snnframe.run import build

REPO = Path(__file__).resolve().parents[1]
SEED = "12C5-MP2-64C5-MP2-FC10"


def leaky():
    return Leaky(beta=0.5)


def kinds(net):
    return [type(m).__name__ for m in net]


def same_weights(a, b):
    b.load_state_dict(a.state_dict())


# ---- the seed's CSNN -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 28, 28), (2, 34, 34)])
def test_csnn_is_exactly_the_seeds_spec(shape):
    torch.manual_seed(3)
    reference = csnn(input_shape=shape, num_classes=10, neuron=leaky)
    torch.manual_seed(3)
    net = layers(input_shape=shape, num_classes=10, neuron=leaky, spec=SEED)
    assert kinds(net) == kinds(reference)
    assert [str(m) for m in net] == [str(m) for m in reference]  # sizes, strides, pools
    assert net.neuron_indices == reference.neuron_indices
    count = sum(p.numel() for p in net.parameters())
    assert count == sum(p.numel() for p in reference.parameters()) == {(1, 28, 28): 29_826, (2, 34, 34): 35_886}[shape]
    for (name, a), (other, b) in zip(net.state_dict().items(), reference.state_dict().items()):
        assert name == other and torch.equal(a, b)  # the same weights from the same seed: drawn in the same order
    static = torch.rand(4, *shape).unsqueeze(0).expand(8, 4, *shape)
    events = (torch.rand(8, 4, *shape) < 0.03).float()
    for x in (static, events):
        assert torch.equal(net(x), reference(x))


def test_the_seeds_own_notation_checks_the_flattened_size():
    net = layers(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, spec="12C5-MP2-64C5-MP2-1024FC10")
    assert net[7].in_features == 1024 and net.spec == "12C5-MP2-64C5-MP2-1024FC10"
    assert layers(input_shape=(2, 34, 34), num_classes=10, neuron=leaky, spec=SEED).spec == "12C5-MP2-64C5-MP2-1600FC10"
    with pytest.raises(ParameterError, match="expects 1024 input features, but its input has 1600 .64x5x5."):
        layers(input_shape=(2, 34, 34), num_classes=10, neuron=leaky, spec="12C5-MP2-64C5-MP2-1024FC10")


def test_the_network_keeps_what_it_was_built_from():
    net = layers(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, spec="12c5-mp2-64C5-MP2-fc")
    assert isinstance(net, LayerNetwork) and net.input_shape == (1, 28, 28)
    assert net.layer_specs == (Conv(12, 5), Pool("max", 2), Conv(64, 5), Pool("max", 2), FC(None))
    assert net.layer_specs[0].where.index == 1 and net.layer_specs[0].where.text == "12c5"
    assert net.stages == ((0, 1, 2), (3, 4, 5), (7, 8))  # weight layer first, neuron last; flatten (6) in none


def test_the_neuron_factory_gets_each_stages_shape():
    shapes = []

    def neuron(*, shape=None):
        shapes.append(shape)
        return Leaky()

    layers(input_shape=(1, 28, 28), num_classes=10, neuron=neuron, spec=SEED)
    assert shapes == [(12, 12, 12), (64, 4, 4), (10,)]
    csnn(input_shape=(1, 28, 28), num_classes=10, neuron=neuron)
    mlp(input_shape=(1, 8, 8), num_classes=10, neuron=neuron, hidden=[32])
    assert shapes[3:] == [(12, 12, 12), (64, 4, 4), (10,), (32,), (10,)]


# ---- tokens ------------------------------------------------------------------------------------


def test_padding_stride_and_every_pool():
    net = layers(input_shape=(2, 32, 32), num_classes=5, neuron=leaky, spec="16C3p1-AP2-32C3p1s2-SP2-MP2-FC5")
    conv1, conv2 = net[0], net[3]
    assert (conv1.padding, conv1.stride, conv2.padding, conv2.stride) == ((1, 1), (1, 1), (1, 1), (2, 2))
    assert type(net[1]) is nn.AvgPool2d and net[1].kernel_size == 2
    assert isinstance(net[4], SumPool2d) and isinstance(net[4], nn.AvgPool2d) and type(net[5]) is nn.MaxPool2d
    # 32 -> 32 -> 16 -> 8 -> 4 -> 2: 32 * 2 * 2 features
    assert net[-2].in_features == 128 and net.spec == "16C3p1-AP2-32C3p1s2-SP2-MP2-128FC5"
    assert net(torch.rand(3, 2, 2, 32, 32)).shape == (3, 2, 5)


def test_sum_pooling_sums_exactly():
    x = torch.randint(0, 2, (3, 4, 6, 6)).float()
    assert torch.equal(SumPool2d(2)(x), x.unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2)))


def test_batch_norm_and_dropout_sit_before_the_stages_neuron():
    net = layers(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, spec="12C5-BN-MP2-DO0.25-FC64-BN-DO0.1-FC")
    assert kinds(net) == [
        "Conv2d",
        "BatchNorm2d",
        "MaxPool2d",
        "Dropout",
        "Leaky",
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "Dropout",
        "Leaky",
        "Linear",
        "Leaky",
    ]
    assert net[3].p == 0.25 and net[8].p == 0.1 and net[1].num_features == 12 and net[7].num_features == 64
    assert net(torch.rand(4, 3, 1, 28, 28)).shape == (4, 3, 10)


def test_fully_connected_spec_is_the_mlp():
    torch.manual_seed(0)
    a = layers(input_shape=(1, 8, 8), num_classes=10, neuron=leaky, spec="FC32-FC10")
    torch.manual_seed(0)
    b = mlp(input_shape=(1, 8, 8), num_classes=10, neuron=leaky, hidden=[32])
    assert kinds(a) == kinds(b) and [str(m) for m in a] == [str(m) for m in b]
    x = torch.rand(5, 3, 1, 8, 8)
    assert torch.equal(a(x), b(x))
    flat = layers(input_shape=(700,), num_classes=20, neuron=leaky, spec="FC128-FC")
    assert kinds(flat) == ["Linear", "Leaky", "Linear", "Leaky"]  # 1-d input: nothing to flatten


def test_the_table_form_builds_the_same_modules():
    tables = [
        {"type": "conv", "channels": 12, "kernel": 5},
        {"type": "maxpool", "kernel": 2},
        {"type": "conv", "channels": 64, "kernel": 5},
        {"type": "maxpool", "kernel": 2},
        {"type": "fc", "size": 10},
    ]
    torch.manual_seed(1)
    a = layers(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, layers=tables)
    torch.manual_seed(1)
    b = layers(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, spec=SEED)
    assert [str(m) for m in a] == [str(m) for m in b] and a.spec == b.spec
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.layer_specs == b.layer_specs


def test_the_table_form_says_what_a_token_cannot():
    net = layers(
        input_shape=(1, 28, 28),
        num_classes=10,
        neuron=leaky,
        layers=[
            {"type": "conv", "channels": 8, "kernel": 3, "padding": 1, "bias": False},
            {"type": "avgpool", "kernel": 3, "stride": 2},
            {"type": "batchnorm"},
            {"type": "dropout", "p": 0.5},
            {"type": "fc", "features": 8 * 13 * 13, "bias": False},
        ],
    )
    assert net[0].bias is None and net[1].stride == 2 and net[1].kernel_size == 3
    assert net[-2].bias is None and net[-2].in_features == 1352 and net[-2].out_features == 10


# ---- bad specs: one clear recipe error each ---------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    plugins = load_plugins()
    runner = CliRunner()
    return lambda *args: runner.invoke(make_cli(plugins), [str(a) for a in args])


BAD_SPECS = [
    # spec, the token pointed at (None: no single token), what the message says
    ("12C5-MP2-XY3-FC10", "XY3", 'token 3 "XY3" is not a layer; tokens are {c}C{k}'),
    ("", None, "the spec is empty"),
    ("12C5--FC10", "--", "token 2 is empty"),
    ("12C5-MP2-FC10-", "-", "token 4 is empty"),
    ("MP2-12C5-FC10", "MP2", 'token 1 "MP2": a pool before any convolution or FC'),
    ("BN-FC10", "BN", 'token 1 "BN": batch norm before any convolution or FC'),
    ("FC128-12C5-FC10", "12C5", 'token 2 "12C5": a convolution cannot follow an FC layer'),
    ("FC128-MP2-FC10", "MP2", 'token 2 "MP2": pooling needs an image, but it follows an FC layer'),
    (
        "12C5-MP2-64C5-MP2-64C5-FC10",
        "64C5",
        'token 5 "64C5" shrinks the image below 1 pixel: 4x4 in, 5x5 kernel -> 0x0',
    ),
    ("12C5-MP32-FC10", "MP32", 'token 2 "MP32" shrinks the image below 1 pixel: 24x24 in, 32x32 pool -> 0x0'),
    ("12C30-FC10", "12C30", 'token 1 "12C30" shrinks the image below 1 pixel: 28x28 in, 30x30 kernel -> 0x0'),
    (
        "12C5-MP2-64C5-MP2-1000FC10",
        "1000FC10",
        'token 5 "1000FC10" expects 1000 input features, but its input has 1024 (64x4x4)',
    ),
    (
        "FC128-FC12",
        "FC12",
        'token 2 "FC12": the last FC has 12 outputs, but the data set has 10 classes; write FC10, or FC',
    ),
    ("FC-FC10", "FC", 'token 1 "FC": only the last FC may leave out its size'),
    ("12C5-MP2", "MP2", "the network must end with an FC layer of 10 outputs"),
    ("FC128-DO1.5-FC10", "DO1.5", 'token 2 "DO1.5": the dropout probability must be in [0, 1), got 1.5'),
    ("0C5-FC10", "0C5", 'token 1 "0C5": channels and kernel size must be at least 1'),
    ("12C5p1p2-FC10", "12C5p1p2", 'token 1 "12C5p1p2" sets the padding twice'),
    ("12C5s0-FC10", "12C5s0", 'token 1 "12C5s0": the stride must be at least 1'),
    ("MP0-FC", "MP0", 'token 1 "MP0": the pool size must be at least 1'),
    ("12C5-FC0", "FC0", 'token 2 "FC0": an FC layer needs at least 1 input and 1 output'),
]


@pytest.mark.parametrize("spec, token, message", BAD_SPECS, ids=[s or "empty" for s, _, _ in BAD_SPECS])
def test_a_bad_spec_is_one_clear_recipe_error(cli, tmp_path, spec, token, message):
    result = cli(
        "validate",
        REPO / "recipes" / "quickstart.toml",
        "--set",
        f'model={{kind = "layers", spec = "{spec}"}}',
        "--set",
        f"experiment.out_dir={tmp_path}",
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.output.rstrip("\n").splitlines()
    assert lines[0].startswith(f"snnframe: error: {REPO / 'recipes' / 'quickstart.toml'}: model.spec: ")  # one problem
    assert message in lines[0], lines[0]
    assert lines[1] == f"      {spec}"  # the spec, quoted on its own line ...
    if token is not None:  # ... and a caret line under the token
        column = lines[2].index("^") - 6
        assert lines[2].strip() == "^" * len(token)
        assert spec[column : column + len(token)] == token


def test_conv_on_features_and_both_or_neither_form(tmp_path):
    with pytest.raises(ParameterError, match=r"needs image input \(C, H, W\), but the data gives \(700,\)"):
        layers(input_shape=(700,), num_classes=20, neuron=leaky, spec="12C5-FC")
    with pytest.raises(ValueError, match="either as spec"):
        layers(input_shape=(700,), num_classes=20, neuron=leaky)
    with pytest.raises(ValueError, match="not both"):
        layers(input_shape=(700,), num_classes=20, neuron=leaky, spec="FC", layers=[{"type": "fc"}])


@pytest.mark.parametrize(
    "tables, key, message",
    [
        ([], "layers", "the list of layers is empty"),
        ([{"type": "convv", "channels": 4, "kernel": 3}], "layers[0].type", "got 'convv' (did you mean \"conv\"?)"),
        ([{"channels": 4}], "layers[0].type", "missing; types are conv, maxpool"),
        ([{"type": "conv", "channels": 4}, {"type": "fc"}], "layers[0].kernel", "missing (required by a conv layer)"),
        ([{"type": "conv", "channels": 4, "kernel": 3, "strid": 2}], "layers[0].strid", '(did you mean "stride"?)'),
        ([{"type": "conv", "channels": "4", "kernel": 3}], "layers[0].channels", "expected an integer, got '4'"),
        ([{"type": "fc", "size": 0}], "layers[0].size", "must be at least 1, got 0"),
        ([{"type": "dropout", "p": 1.0}, {"type": "fc"}], "layers[0].p", "must be in [0, 1)"),
        ([{"type": "fc"}, {"type": "maxpool", "kernel": 2}], "layers[1]", "this pooling layer: pooling needs an image"),
        ([{"type": "conv", "channels": 4, "kernel": 40}, {"type": "fc"}], "layers[0]", "this conv layer shrinks"),
        ([{"type": "fc", "size": 3}], "layers[0]", "this fc layer: the last FC has 3 outputs"),
    ],
)
def test_table_form_errors_name_the_key(tables, key, message):
    with pytest.raises(ParameterError) as info:
        layers(input_shape=(1, 28, 28), num_classes=10, neuron=leaky, layers=tables)
    assert info.value.key == key and message in str(info.value), str(info.value)


def test_table_form_errors_through_the_recipe(cli, tmp_path):
    recipe = tmp_path / "r.toml"
    text = (REPO / "recipes" / "quickstart.toml").read_text().replace('kind = "csnn"', 'kind = "layers"')
    text += '\n[[model.layers]]\ntype = "conv"\nchannels = 4\nkernel = 3\nstrid = 2\n\n[[model.layers]]\ntype = "fc"\n'
    recipe.write_text(text)
    result = cli("validate", recipe, "--set", f"experiment.out_dir={tmp_path}")
    assert result.exit_code == 2, result.output
    assert 'model.layers[0].strid: unknown key for a conv layer (did you mean "stride"?)' in result.output


# ---- per-layer neurons, recurrent neurons, through the recipe ----------------------------------


def built(*overrides):
    from snnframe.recipe import read_with_overrides

    data = read_with_overrides(REPO / "recipes" / "quickstart.toml", list(overrides))
    return build(data, "quickstart.toml").components.model


def test_per_layer_neurons_in_the_csnn_recipe():
    net = built('model.neurons.3={kind = "synaptic", alpha = 0.8}')
    assert kinds(net)[-1] == "Synaptic" and net[-1].alpha.item() == pytest.approx(0.8)
    assert [type(net[i]) for i in net.neuron_indices] == [Leaky, Leaky, Synaptic]
    assert net[2].surrogate.slope == 25  # [model.neuron]'s fast_sigmoid for the others
    assert isinstance(net[-1], Synaptic)


def test_a_recurrent_mlp_from_the_recipe():
    net = built('model={kind = "layers", spec = "FC128-FC10", neurons = {1 = {kind = "rleaky", beta = 0.9}}}')
    assert kinds(net) == ["Flatten", "Linear", "RLeaky", "Linear", "Leaky"]
    assert isinstance(net[2].recurrent, nn.Linear) and net[2].recurrent.in_features == 128
    assert sum(p.numel() for p in net.parameters()) == 784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10
    assert net(torch.rand(2, 1, 28, 28).unsqueeze(0).expand(4, -1, -1, -1, -1)).shape == (4, 2, 10)


def test_a_recurrent_convolutional_layer_from_the_recipe():
    net = built('model.neurons.2={kind = "rsynaptic", kernel_size = 3}')
    assert isinstance(net[5].recurrent, nn.Conv2d) and net[5].recurrent.in_channels == 64
    x = torch.rand(2, 1, 28, 28).unsqueeze(0).expand(6, -1, -1, -1, -1)
    out = net(x)
    out.sum().backward()
    assert out.shape == (6, 2, 10) and net[5].recurrent.weight.grad is not None


def test_per_layer_index_beyond_the_network_names_the_count(cli, tmp_path):
    result = cli(
        "validate",
        REPO / "recipes" / "quickstart.toml",
        "--set",
        'model.neurons.4={kind = "leaky"}',
        "--set",
        'model.neurons.2={kind = "rleeky"}',
        "--set",
        f"experiment.out_dir={tmp_path}",
    )
    assert result.exit_code == 2
    assert 'model.neurons.2.kind: unknown neuron "rleaky"' not in result.output
    assert 'model.neurons.2.kind: unknown neuron "rleeky" (did you mean "rleaky"?)' in result.output
    result = cli(
        "validate",
        REPO / "recipes" / "quickstart.toml",
        "--set",
        'model.neurons.4={kind = "leaky"}',
        "--set",
        f"experiment.out_dir={tmp_path}",
    )
    assert 'model.neurons.4: the network has 3 spiking layers (architecture "csnn")' in result.output


def test_a_bad_parameter_of_a_recurrent_layer_is_reported_at_its_table(cli, tmp_path):
    result = cli(
        "validate",
        REPO / "recipes" / "quickstart.toml",
        "--set",
        'model.neurons.1={kind = "rleaky", kernel_size = 4}',
        "--set",
        f"experiment.out_dir={tmp_path}",
    )
    assert result.exit_code == 2
    assert (
        "model.neurons.1: kernel_size of the recurrent convolution must be an odd positive integer, got 4 "
        "(spiking layer 1: the architecture called neuron() with shape (12, 12, 12))"
    ) in result.output


# ---- the engine's optimisations apply ----------------------------------------------------------


def saved_bytes(net, x, y):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = nn.functional.cross_entropy(net(x).mean(0), y)
    loss.backward()
    return total


def test_static_hoisting_compact_saves_and_the_event_driven_layer_apply(monkeypatch):
    torch.manual_seed(0)
    a = layers(input_shape=(2, 34, 34), num_classes=10, neuron=leaky, spec=SEED)
    b = csnn(input_shape=(2, 34, 34), num_classes=10, neuron=leaky)
    same_weights(a, b)
    y = torch.randint(0, 10, (4,))
    events = (torch.rand(10, 4, 2, 34, 34) < 0.02).float()
    used = []
    original = sparse_conv.conv_pool
    monkeypatch.setattr(sparse_conv, "conv_pool", lambda *args: used.append(args[2].requires_grad) or original(*args))
    assert saved_bytes(a, events, y) == saved_bytes(b, events, y)  # compact saves: the same tensors
    assert used.count(False) == 2  # the event-driven first conv + pool (on the input) ran for both
    seen = []
    a[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    a(torch.rand(4, 2, 34, 34).unsqueeze(0).expand(10, -1, -1, -1, -1))
    assert seen == [4]  # static input: conv1 ran once on B samples, not T * B


def test_a_recurrent_network_learns():
    """Rate-coded class patterns through FC32 (rleaky) -> FC: the fused backward pass trains it."""
    torch.manual_seed(0)
    net = layers(
        input_shape=(16,), num_classes=4, neuron=lambda *, shape: RLeaky(shape=shape, beta=0.8), spec="FC32-FC"
    )
    g = torch.Generator().manual_seed(0)
    patterns = torch.rand(4, 16, generator=g)
    y = torch.arange(16) % 4
    x = (torch.rand(20, 16, 16, generator=g) < patterns[y] * 0.6).float()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        out = net(x).mean(0)
        loss = nn.functional.cross_entropy(out * 5, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.25 * losses[0]
    assert (net(x).mean(0).argmax(1) == y).float().mean() > 0.9


def test_parse_spec_reports_the_token_position():
    spec = " 12C5 - MP2 -FC10"
    parsed = parse_spec(spec)
    assert [p.where.text for p in parsed] == ["12C5", "MP2", "FC10"]
    assert [spec[p.where.start : p.where.start + len(p.where.text)] for p in parsed] == ["12C5", "MP2", "FC10"]


# ---- the docs' examples --------------------------------------------------------------------


def recipes_doc_blocks(kind):
    import re

    text = (REPO / "docs" / "recipes.md").read_text()
    section = text[text.index("## Networks: the `layers` notation") : text.index("## Validation")]
    return re.findall(rf"```{kind}\n(.*?)```", section, flags=re.S)


def test_the_docs_network_examples_build():
    import tomllib

    from snnframe.recipe import read_with_overrides

    blocks = [tomllib.loads(b) for b in recipes_doc_blocks("toml")]
    assert len(blocks) == 5  # the CSNN, the VGG-style network, the recurrent MLP, the table form, per-layer
    for block in blocks:
        data = read_with_overrides(REPO / "recipes" / "quickstart.toml")
        if "kind" in block["model"]:
            data["model"] = block["model"]
        else:  # per-layer tables added to the quick start's model
            data["model"].update(block["model"])
        net = build(data, "docs").components.model
        assert net(torch.rand(2, 1, 28, 28).unsqueeze(0).expand(3, -1, -1, -1, -1)).shape == (3, 2, 10)
    vgg = next(b for b in blocks if "32C3p1" in b["model"].get("spec", ""))
    net = layers(input_shape=(2, 34, 34), num_classes=10, neuron=leaky, spec=vgg["model"]["spec"])
    assert net[15].in_features == 4096 and sum(p.numel() for p in net.parameters()) == 1_117_066


def test_the_docs_error_example_is_what_validate_prints(cli, tmp_path):
    text = (REPO / "docs" / "recipes.md").read_text()
    block = text.split("```\n$ snnframe validate", 1)[1].split("```", 1)[0]
    block = "$ snnframe validate" + block
    command, *expected = block.rstrip("\n").splitlines()
    spec = command.split('spec = "')[1].split('"')[0]
    result = cli(
        "validate",
        REPO / "recipes" / "quickstart.toml",
        "--set",
        f'model={{kind = "layers", spec = "{spec}"}}',
        "--set",
        f"experiment.out_dir={tmp_path}",
    )
    shown = result.output.replace(str(REPO) + "/", "").rstrip("\n").splitlines()
    assert shown == expected
