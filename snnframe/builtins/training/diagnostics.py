"""Warnings after an epoch: silent or saturated spiking layers, and a loss that does not move.

The most common way an SNN fails is quietly: a layer never fires, nothing reaches the layers
after it (and no surrogate gradient flows back), the loss sits at ln(classes) and the accuracy
at chance. These checks read the epoch's ``metrics.jsonl`` row and say which layer, how much it
fired and what usually helps. They are warnings: training goes on.
"""

from __future__ import annotations

import math
from typing import Any

STUCK_EPOCHS = 2  # the loss unchanged (to 4 decimals) for this many epochs in a row ...
CHANCE_MARGIN = 0.05  # ... while the accuracy is within this of 1 / classes


def epoch_warnings(history: list[dict[str, Any]], settings: dict[str, Any]) -> list[str]:
    """The warnings for the last row of ``history`` (each a sentence, without a "warning:" prefix).

    ``settings``: ``silent_below`` and ``saturated_above`` (fractions of neuron-steps; 0 and 1
    turn the checks off), ``num_classes`` and ``loss_kind`` (the recipe's ``train.loss.kind``).
    """
    if not history:
        return []
    row = history[-1]
    warnings = [
        message
        for name, rate in (row.get("firing_rates") or {}).items()
        if (message := layer_warning(name, rate, row, settings))
    ]
    stuck = stuck_loss_warning(history, settings["num_classes"], settings.get("loss_kind"))
    return warnings + ([stuck] if stuck else [])


def layer_warning(name: str, rate: float, row: dict[str, Any], settings: dict[str, Any]) -> str | None:
    silent_below, saturated_above = settings["silent_below"], settings["saturated_above"]
    if rate < silent_below:
        loss_kind = settings.get("loss_kind")
        loss_hint = (
            f"; mse_count instead of {loss_kind} as [train.loss] (it asks every output neuron for spikes)"
            if loss_kind not in (None, "mse_count")
            else ""
        )
        return (
            f"layer {name} is silent: it fired on {rate:.4%} of its neuron-steps on the test set (below "
            f"{silent_below:.1%}), so the layers after it get almost no input and almost no gradient flows back "
            "through it. What usually helps: a larger beta (slower leak) or a smaller threshold in [model.neuron], "
            "above all for sparse input such as 1 ms event frames (or longer frames, e.g. encoder.time_window_us)"
            f"{loss_hint}."
        )
    if rate > saturated_above:
        return (
            f"layer {name} is saturated: it fired on {rate:.1%} of its neuron-steps on the test set (above "
            f"{saturated_above:.0%}), so its spikes carry little information and its surrogate gradients are "
            f"small. What usually helps: a lower train.lr (now {row.get('lr', float('nan')):g}), train.grad_clip, "
            "or a larger threshold in [model.neuron]."
        )
    return None


def stuck_loss_warning(history: list[dict[str, Any]], num_classes: int, loss_kind: str | None = None) -> str | None:
    """A warning when the training loss has not moved (4 decimals) for 2 epochs while accuracy is at chance."""
    if len(history) < STUCK_EPOCHS or num_classes < 2:
        return None
    rounded = [round(float(row["train_loss"]), 4) for row in history]
    same = 1
    while same < len(rounded) and rounded[-1 - same] == rounded[-1]:
        same += 1
    if same < STUCK_EPOCHS:
        return None
    last = history[-1]
    accuracy = last.get("test_acc")
    which = "test"
    if accuracy is None:
        accuracy, which = last.get("train_acc"), "training"
    chance = 1.0 / num_classes
    if accuracy is None or abs(accuracy - chance) > CHANCE_MARGIN:
        return None
    silent_output = ""
    if loss_kind == "ce_rate" and abs(rounded[-1] - round(math.log(num_classes), 4)) < 1e-4:
        silent_output = (
            f" A cross-entropy loss of ln({num_classes}) = {rounded[-1]:.4f} means the output layer is silent."
        )
    loss_hint = "" if loss_kind == "mse_count" else " or a loss that asks every output neuron for spikes (mse_count)"
    return (
        f"the training loss has stayed at {rounded[-1]:.4f} for {same} epochs while the {which} accuracy "
        f"({accuracy:.1%}) is at chance ({chance:.1%} for {num_classes} classes): the network is not learning."
        f"{silent_output} Look for a silent layer in firing_rates (the warnings above); otherwise try another "
        f"train.lr{loss_hint}."
    )
