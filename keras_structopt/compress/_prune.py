"""Magnitude pruning of a tf_keras model with TFMOT, layer by layer."""

from __future__ import annotations

import math

import numpy as np

from keras_structopt import _checks
from keras_structopt.bridge import architecture_of
from keras_structopt.bridge._graph import iter_layers
from keras_structopt.bridge._spec import rerender
from keras_structopt.bridge._tfmot import tfmot
from keras_structopt.compress._data import count_examples
from keras_structopt.compress._stages import ConstantSparsity, PolynomialDecay, Prune
from keras_structopt.compress._treatment import LayerTreatment, layer_weights, pruned_arrays, weight_key, zero_fraction

# Weight names TFMOT clusters; the measurements of unique values read the same ones.
KERNEL_NAMES = ("kernel", "recurrent_kernel", "pointwise_kernel", "embeddings")

_PRUNABLE_BIDIRECTIONAL = None


def _prunable_bidirectional_class():
    """A tf_keras Bidirectional that tells TFMOT which weights to prune."""
    global _PRUNABLE_BIDIRECTIONAL
    if _PRUNABLE_BIDIRECTIONAL is None:
        import tf_keras

        class PrunableBidirectional(
            tf_keras.layers.Bidirectional, tfmot().sparsity.keras.PrunableLayer  # type: ignore[misc]
        ):
            plain_class = tf_keras.layers.Bidirectional  # what a copy turns it back into

            def get_prunable_weights(self):
                return [
                    weight
                    for direction in (self.forward_layer, self.backward_layer)
                    for weight in (direction.cell.kernel, direction.cell.recurrent_kernel)
                ]

        _PRUNABLE_BIDIRECTIONAL = PrunableBidirectional
    return _PRUNABLE_BIDIRECTIONAL


def _registry():
    tfmot()  # import the toolkit the careful way before its internals
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    return PruneRegistry


def prunable_weights(layer) -> tuple[list, str | None]:
    """The variables TFMOT would prune in `layer`, or `([], why not)`."""
    import tf_keras

    if not layer.weights:
        return [], None
    if isinstance(layer, tf_keras.layers.Bidirectional):
        directions = (layer.forward_layer, layer.backward_layer)
        if not isinstance(directions[0], (tf_keras.layers.LSTM, tf_keras.layers.GRU, tf_keras.layers.SimpleRNN)):
            return [], f"TFMOT cannot prune a Bidirectional {type(directions[0]).__name__}"
        return [w for d in directions for w in (d.cell.kernel, d.cell.recurrent_kernel)], None
    if isinstance(layer, tfmot().sparsity.keras.PrunableLayer):  # a registered layer that says what to prune
        return list(layer.get_prunable_weights()), None
    registry = _registry()
    if not registry.supports(layer):
        if type(layer).__name__ == "PositionEmbedding":
            return [], "a position table keeps every position (clustered, not pruned)"
        return [], f"TFMOT cannot prune {type(layer).__name__} layers"
    if registry._is_rnn_layer(layer):
        cells = registry._get_rnn_cells(layer)
        return [getattr(cell, name) for cell in cells for name in registry._RNN_CELLS_WEIGHTS_MAP[type(cell)]], None
    if registry._is_mha_layer(layer):
        names = registry._weight_names(layer)
        return [getattr(getattr(layer, n.rpartition(".")[0]), n.rpartition(".")[2]) for n in names], None
    names = registry._weight_names(layer)
    if not names:
        return [], f"TFMOT prunes no weight of {type(layer).__name__} layers"
    return [getattr(layer, name) for name in names], None


_M_BY_N_LAYERS = ("Dense", "Conv1D", "Conv2D")


def plan(model, stage: Prune) -> dict[str, LayerTreatment]:
    """One `LayerTreatment` per layer with weights, saying what pruning `stage` will take.

    `stage.exclude` names layers (by name or path) kept dense; `"first"` and `"last"`
    name the first and last prunable layers. `stage.per_layer` gives layers their own
    targets. With `stage.m_by_n`, only Dense and convolution kernels are pruned (m of
    every n consecutive input weights), as sparse tensor cores need. A stage that does
    not apply (sparsity 0) plans nothing pruned.
    """
    sparsity, exclude, layer_sparsity, m_by_n = stage.sparsity, stage.exclude, stage.per_layer, stage.m_by_n
    treatments = {}
    prunable_paths = []
    for path, layer in iter_layers(model):
        if not layer.weights:
            continue
        treatment = LayerTreatment(path, type(layer).__name__, int(layer.count_params()))
        variables, reason = prunable_weights(layer)
        if variables and m_by_n is not None and type(layer).__name__ not in _M_BY_N_LAYERS:
            variables, reason = [], f"{m_by_n[0]}:{m_by_n[1]} sparsity applies to Dense and convolution kernels only"
        if variables:
            treatment.pruned_weights = tuple(weight_key(layer, v) for v in variables)
            prunable_paths.append(path)
        elif reason:
            treatment.notes.append(reason)
        treatments[path] = treatment
    names = {path: path.rsplit("/", 1)[-1] for path in treatments}
    excluded = set(exclude)
    if prunable_paths:
        excluded = {prunable_paths[0] if n == "first" else prunable_paths[-1] if n == "last" else n for n in excluded}
    targets: dict[str, float] = dict(layer_sparsity)
    unknown = sorted((set(excluded) | set(targets)) - set(treatments) - set(names.values()))
    if unknown:
        raise _checks.error(
            f"Expected layer names of the model in exclude / per_layer. Received: {unknown}; the layers "
            f"with weights are {sorted(treatments)}."
        )
    for path, treatment in treatments.items():
        if not treatment.pruned_weights:
            continue
        if path in excluded or names[path] in excluded:
            treatment.pruned_weights = ()
            treatment.notes.append("excluded from pruning by the caller")
            continue
        target = targets.get(path, targets.get(names[path], sparsity))
        if m_by_n is None and target <= 0:
            treatment.pruned_weights = ()
            treatment.notes.append("sparsity 0: not pruned")
            continue
        if not stage.applies:
            treatment.pruned_weights = ()
            treatment.notes.append("pruning skipped")
            continue
        treatment.pruned = True
        treatment.target = None if m_by_n is not None else float(target)
    return treatments


def pruning_schedule(schedule: PolynomialDecay | ConstantSparsity, sparsity: float, steps: int):
    """The TFMOT schedule of `schedule`'s shape that reaches `sparsity` within `steps` training steps.

    TFMOT's default `frequency=100` can leave a short fine-tune at 0 % sparsity; here
    the frequency and end step come from the real step count, and the last pruning
    step lands before training ends. `PolynomialDecay` raises the sparsity gradually;
    `ConstantSparsity` prunes to the target at once and keeps the mask up to date.
    """
    events = max(1, min(64, steps - 1))
    frequency = max(1, int(0.75 * steps) // events)
    api = tfmot().sparsity.keras
    if isinstance(schedule, ConstantSparsity):
        return api.ConstantSparsity(float(sparsity), begin_step=0, end_step=frequency * events, frequency=frequency)
    return api.PolynomialDecay(
        initial_sparsity=float(schedule.initial_sparsity),
        final_sparsity=float(sparsity),
        begin_step=0,
        end_step=frequency * events,
        power=schedule.power,
        frequency=frequency,
    )


def prune(model, train, stage: Prune, *, epochs: int, batch_size: int, fine_tuning, treatments, validation=None,
          verbose=0, run_eagerly=False):
    """Prunes the planned weights of a tf_keras model to their targets, fine-tuning it.

    It consumes `model` (a disposable tf_keras copy: TFMOT's wrappers mutate the
    layers they wrap) and returns a new, stripped tf_keras model; it fills in each
    treatment's reached sparsity.
    """
    import tf_keras

    sparsity_api = tfmot().sparsity.keras
    steps = math.ceil(count_examples(train[0]) / batch_size) * epochs

    def wrap(path, layer):
        treatment = treatments.get(path)
        if treatment is None or not treatment.pruned:
            return layer  # shared with the disposable copy, weights and all
        if isinstance(layer, tf_keras.layers.Bidirectional):
            prunable = _prunable_bidirectional_class().from_config(layer.get_config())
            prunable.build(layer.input_shape)
            prunable.set_weights(layer.get_weights())
            layer = prunable
        if stage.m_by_n is not None:
            return sparsity_api.prune_low_magnitude(
                layer, pruning_schedule=pruning_schedule(ConstantSparsity(), 0.5, steps), sparsity_m_by_n=stage.m_by_n
            )
        chosen = pruning_schedule(stage.schedule, treatment.target, steps)
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=chosen)

    result = wrap_fine_tune_strip(
        model, wrap, sparsity_api.strip_pruning, train, epochs=epochs, batch_size=batch_size,
        fine_tuning=fine_tuning, validation=validation, verbose=verbose, run_eagerly=run_eagerly,
        callbacks=[sparsity_api.UpdatePruningStep()],
    )
    for path, layer in iter_layers(result):
        treatment = treatments.get(path)
        if treatment is not None and treatment.pruned:
            weights = layer_weights(layer)
            treatment.sparsity = zero_fraction([weights[key] for key in treatment.pruned_weights if key in weights])
    return result


def check_reached(model, treatments, tolerance: float = 0.02) -> list[str]:
    """Warnings for a pruned model whose sparsity falls short of the targets."""
    targeted = {path: t for path, t in treatments.items() if t.pruned and t.target is not None}
    if not targeted:
        return []
    sizes = {}
    for path, layer in iter_layers(model):
        if path in targeted:
            weights = layer_weights(layer)
            sizes[path] = sum(weights[key].size for key in targeted[path].pruned_weights if key in weights)
    total = sum(sizes.values())
    target = sum(targeted[path].target * size for path, size in sizes.items()) / total if total else 0.0
    reached = zero_fraction(pruned_arrays(model, targeted))
    if reached < target - tolerance:
        return [
            f"pruning reached a sparsity of {reached:.3f} in the pruned weights, short of the "
            f"target {target:.3f}: fine-tune longer (prune_epochs) or check the schedule"
        ]
    return []


def check_plan(treatments, stage: Prune) -> None:
    """Refuses a pruning stage that no layer of the model can take."""
    if stage.applies and not any(t.pruned for t in treatments.values()):
        reasons = "; ".join(f"{t.layer}: {', '.join(t.notes) or 'no prunable weights'}" for t in treatments.values())
        raise _checks.error(
            f"Expected a model with layers TFMOT can prune for {stage!r}. Received: a model "
            f"none of whose layers can be pruned ({reasons or 'it has no weights'}). Use Prune(0) to skip pruning."
        )


def wrap_fine_tune_strip(
    model, wrap, strip, train, *, epochs, batch_size, fine_tuning, validation, verbose, callbacks=(), run_eagerly=False
):
    """The shape of every TFMOT stage: wrap the layers of a disposable model, fine-tune, strip.

    `model` must be a copy nobody else holds: TFMOT's wrappers mutate the layers they
    wrap. `wrap(path, layer)` returns the layer to use (nested models are opened and
    wrapped layer by layer). Returns a clean tf_keras model: a rendering of the
    model's spec with the stripped weights when it has one, else the stripped model.
    `run_eagerly` is `FineTuning.runs_eagerly`'s answer for this fit.
    """
    import tf_keras

    def cloner(prefix):
        def clone(layer):
            if isinstance(layer, tf_keras.Model):
                return tf_keras.models.clone_model(layer, clone_function=cloner(f"{prefix}{layer.name}/"))
            return wrap(f"{prefix}{layer.name}", layer)

        return clone

    wrapped = tf_keras.models.clone_model(model, clone_function=cloner(""))
    fine_tuning.compile(wrapped, run_eagerly=run_eagerly)
    if epochs:
        wrapped.fit(
            train[0],
            train[1],
            batch_size=batch_size,
            epochs=epochs,
            validation_data=validation,
            callbacks=list(callbacks),
            verbose=verbose,
        )
    stripped = strip(wrapped)
    spec = architecture_of(model)
    if spec is not None:
        return rerender(stripped, tf_keras, architecture=spec, for_tflite=True)
    for _, layer in iter_layers(stripped):
        plain = getattr(type(layer), "plain_class", None)
        if plain is not None:
            layer.__class__ = plain  # the helper subclass only added a method
    return stripped


def kernels(model) -> list[tuple[str, np.ndarray]]:
    """The kernels clustering acts on, as `(layer path/weight name, values)`."""
    found = []
    for path, layer in iter_layers(model):
        for weight in layer.weights:
            base = weight.name.split("/")[-1].split(":")[0]
            if base in KERNEL_NAMES and weight.trainable:
                found.append((f"{path}/{weight_key(layer, weight)}", np.asarray(weight.numpy())))
    return found
