"""One-shot structure search: a Keras Tuner tuner whose trials are read off a weight-sharing supernet.

`OneShotSearch(hypermodel, ...)` is used like any Keras Tuner tuner (`search`,
`results_summary`, `get_best_models`). Its `search` does three things:

1. **Trains the supernet** (`keras_structopt.search._supernet.Supernet`): the HyperModel's
   whole space as one network, once, with the sandwich rule. It is checkpointed
   (`supernet.npz` in the project) at the end of an epoch once `CHECKPOINT_SECONDS` (30 s) have
   passed since the last checkpoint, and after its last epoch, so a killed search resumes
   without training it again (it loses at most the epochs of the last 30 s: a checkpoint of
   the digits' conv space is 111 MB and took 0.7 s to write, a tenth of the supernet's
   training when written every epoch).
2. **Runs the trials** as any tuner does: the oracle (random by default; any
   `StructuralOracle`, Bayesian, evolution or Optuna, with budgets, cost-aware scores and
   the Pareto front) proposes hyperparameters; the sub-network they describe takes its
   weights from the supernet, its batch normalisation statistics are recalibrated on a few
   training batches, and it is scored on the validation data, without training (the
   supernet's own forward pass computes its outputs, which the search's compiled loss and
   metrics score: no Keras model is built for a trial; its weights go to `read_off.npz` in the
   trial's folder, from which `load_model` builds it).
3. **Trains the best few** (`fine_tune`, default 3), from fresh weights or from their
   supernet weights (`fine_tune_from`), as a race: each trains the first tenth of its
   schedule (`race_epochs`), the best of them trains to its end. Their
   objective becomes the trained value; the score read off the supernet stays as the
   metric `supernet_<objective>`. The winner is the
   family's ordinary Keras model (it carries its `Architecture`): `get_best_models`
   returns it, and nothing distinguishes it from a trained trial's model.

`one_shot.json` in the project records the supernet's training, each trial's supernet score
and, for the fine-tuned ones, their score after fine-tuning and its epochs (the race's losers
stopped early), with the rank correlation
between the two (Spearman): whether the supernet's ranking can be trusted.

Families: dense, conv, conv1d and recurrent (any family whose rendering uses dense,
convolution, separable convolution, LSTM and GRU layers (bidirectional or not), embeddings,
batch normalisation, pooling and merge layers). The transformer, tabular and recommender
families train every trial (use another tuner).
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras_tuner.engine.hyperparameters import Float

from keras_structopt import _checks, _keras_tuner
from keras_structopt._lock import ProjectLock
from keras_structopt._trial_files import read_json, read_note, write_atomically, write_json, write_note
from keras_structopt.search._budget import check_max_time
from keras_structopt.search._curves import trial_directory
from keras_structopt.search._supernet import Supernet, set_layer_weights, supports
from keras_structopt.search._tuner import StructuralTuner, frozen_while_searching

SUPERNET_FILE = "supernet.npz"
ONE_SHOT_FILE = "one_shot.json"
SUPERNET_PREFIX = "supernet_"
READ_OFF_FILE = "read_off.npz"  # a trial's weights as read off the supernet (recalibrated)
FINE_TUNE_FROM = ("scratch", "supernet")
FINE_TUNE_SCHEDULES = ("cosine", "constant")
CHECKPOINT_SECONDS = 30.0  # the supernet's checkpoints: at most one per this many seconds, and its last epoch


def _spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation (ties get their mean rank); None below three pairs."""
    if len(a) < 3:
        return None

    def ranks(values):
        order = np.argsort(values, kind="stable")
        result = np.empty(len(values))
        result[order] = np.arange(len(values), dtype=float)
        values = np.asarray(values)
        for value in np.unique(values):
            tied = values == value
            result[tied] = result[tied].mean()
        return result

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _arrays(name: str, value) -> Any:
    if isinstance(value, (list, tuple, dict)) or not hasattr(value, "shape"):
        raise _checks.error(
            f"Expected {name} to be a NumPy array for a one-shot search (the supernet trains on arrays). "
            f"Received: {type(value).__name__}."
        )
    return np.asarray(value)


class OneShotSearch(StructuralTuner, keras_tuner.RandomSearch):
    """A structure search that trains one weight-sharing supernet, not every candidate.

    Args:
        hypermodel: A keras-structopt HyperModel of the dense, conv, conv1d or recurrent family.
        supernet_epochs: Epochs of supernet training (None: the `epochs` given to `search`).
        fine_tune: How many of the best trials are trained after the search (>= 1).
        fine_tune_from: Where their training starts: `"supernet"` (the weights read off the
            supernet, the default) or `"scratch"` (fresh weights). Measured on MNIST-1D (conv1d,
            10k parameters): with the supernet's sub-networks reading 0.86-0.96 validation
            accuracy off it, the best three fine-tuned from their supernet weights to 0.956-0.974
            and the winner to 0.971 test; from scratch, another search's best three reached
            0.891-0.953 (0.950 test; one search each, seeds 1 and 0). With an earlier, weaker
            supernet (reading 0.46-0.64), fresh weights had been a point better.
        fine_tune_epochs: Their epochs (None: the `epochs` given to `search`); the best epoch's
            weights (by the objective) are kept.
        fine_tune_schedule: `"cosine"` (the default): the learning rate the model was compiled with
            anneals along a cosine to zero over `fine_tune_epochs`, batch by batch; where the
            objective has not improved for a sixth of the epochs (at least 5), the rest of the cosine
            is annealed over the next tenth (at least 3), and the training stops there: easy data
            ends early, data that keeps improving runs the whole schedule. `"constant"`: the
            compiled rate throughout, with early stopping on the objective (the same patience). An
            optimizer compiled with a
            `LearningRateSchedule` keeps its own schedule under both. Measured on MNIST-1D (conv1d,
            10k parameters), the same three sub-networks fine-tuned from their supernet weights at
            3e-3 reached 0.962-0.969 test (mean 0.965) annealed over 60 epochs, 0.947-0.971 (mean 0.961)
            at a constant rate with early stopping, 0.945-0.965 (mean 0.955) at a constant
            1e-3; see the benchmarks page's search-cost section.
        race_epochs: The fine-tuning is a race: each of the `fine_tune` trials trains the first
            `race_epochs` epochs of its schedule, then only the best of them (by the objective, its
            best epoch so far) trains on to `fine_tune_epochs`; the others keep their best epoch of
            the race. None (the default): a tenth of `fine_tune_epochs`, at least 1. 0, or as many as
            `fine_tune_epochs`: every one of them trains every epoch.
        pool: How many network shapes (layers and block kinds; any widths) the supernet trains
            besides the largest and the smallest: each is traced into a graph once.
        random_subnets: Random sub-networks per training step, besides the largest and the smallest.
        supernet_learning_rate: Adam's learning rate for the supernet (cosine-decayed). None:
            0.03 where every block normalises its activations (batch norm: its output does not
            depend on its weights' scale, so large steps are safe), 3e-3 otherwise. Measured on
            MNIST-1D's conv1d space (30 epochs, 24 random sub-networks under 10k parameters read
            off), the mean validation accuracy read off was 0.73 at 3e-3 and batch 32, 0.86 at
            0.03 and batch 128, 0.90 at 0.03 and batch 64 (the default), 0.79 at 0.06; on the
            digits' MLP space (no batch norm) the supernet's ranking of 12 sub-networks agreed
            with their fine-tuned ranking at 0.8 (Spearman) with 3e-3, 0.54 at 0.01, 0.31 at 0.03.
        supernet_batch_size: The supernet's batch size (None: 64, or the `batch_size` given to
            `search` if larger).
        calibration_examples: Training examples each sub-network's batch normalisation
            statistics are recalibrated on.
        distill: In-place distillation: the sub-networks but the largest learn from its
            predictions, not the labels (off by default: measured, it left the sub-networks
            worse; see `keras_structopt.search._supernet`).
        oracle: A `StructuralOracle` (for example
            `structural_oracle(keras_tuner.oracles.BayesianOptimizationOracle)(objective=...,
            max_trials=...)`); None makes a random search's from `objective`, `max_trials`
            and `seed`.
        **kwargs: `keras_structopt.search.tuner`'s features (`cost`, `max_params`, ...) and
            Keras Tuner's arguments (`objective`, `max_trials`, `directory`, ...). Not
            accepted: `folds`, `isolate_trials`, `median_stopping`, `donors`, `prescreen` (a trial
            does not train).

    Example:
        >>> import keras_structopt as kso
        >>> from keras_structopt.data import load_digits_split
        >>> data = load_digits_split("flat", seed=0)
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(8, 32),
        ...                                  seed=0)
        >>> search = kso.search.OneShotSearch(hypermodel, objective="val_accuracy", max_trials=4, fine_tune=1,
        ...     pool=2, directory=getfixture("tmp_path"), project_name="one_shot")
        >>> search.search(*data.train, validation_data=data.validation, epochs=2, verbose=0)
        >>> best = search.get_best_models(1)[0]
        >>> kso.architecture_of(best).family
        'dense'
    """

    def __init__(self, hypermodel: keras_tuner.HyperModel | None = None, *, supernet_epochs: int | None = None,
                 fine_tune: int = 3, fine_tune_from: str = "supernet", fine_tune_epochs: int | None = None,
                 fine_tune_schedule: str = "cosine", race_epochs: int | None = None, pool: int = 12,
                 random_subnets: int = 2, supernet_learning_rate: float | None = None,
                 supernet_batch_size: int | None = None, calibration_examples: int = 512, distill: bool = False,
                 **kwargs: Any):
        for name in ("folds", "isolate_trials", "median_stopping", "donors", "prescreen"):
            if kwargs.get(name) not in (None, False, ()):
                raise _checks.error(
                    f"Expected no {name} for a one-shot search (its trials are read off the supernet, not "
                    f"trained). Received: {name}={kwargs[name]!r}."
                )
        if not callable(getattr(hypermodel, "architecture", None)):
            raise _checks.error(
                "Expected a keras-structopt HyperModel (it describes its networks) for a one-shot search. "
                f"Received: {type(hypermodel).__name__}."
            )
        counts = (("fine_tune", fine_tune, 1), ("pool", pool, 0), ("random_subnets", random_subnets, 0),
                  ("calibration_examples", calibration_examples, 1))
        for name, count, low in counts:
            if not _checks.is_int(count) or count < low:
                raise _checks.error(f"Expected {name} to be an int >= {low}. Received: {name}={count!r}.")
        if race_epochs is not None and (not _checks.is_int(race_epochs) or race_epochs < 0):
            raise _checks.error(
                f"Expected race_epochs to be None or an int >= 0. Received: race_epochs={race_epochs!r}.")
        for name, value in (("supernet_epochs", supernet_epochs), ("fine_tune_epochs", fine_tune_epochs),
                            ("supernet_batch_size", supernet_batch_size)):
            if value is not None:
                _checks.positive_int(name, value)
        if supernet_learning_rate is not None:
            _checks.positive_number("supernet_learning_rate", supernet_learning_rate)
        reason = supports(hypermodel.architecture())  # type: ignore[union-attr]
        if reason is not None:
            raise _checks.error(
                "Expected a HyperModel of the dense, conv, conv1d or recurrent family for a one-shot search. "
                f"Received: {type(hypermodel).__name__}: {reason}. Search it with another tuner (every trial trains)."
            )
        _checks.one_of("fine_tune_from", fine_tune_from, FINE_TUNE_FROM)
        _checks.one_of("fine_tune_schedule", fine_tune_schedule, FINE_TUNE_SCHEDULES)
        self.fine_tune_schedule = fine_tune_schedule
        self.supernet_epochs, self.fine_tune, self.fine_tune_epochs = supernet_epochs, fine_tune, fine_tune_epochs
        self.fine_tune_from, self.race_epochs = fine_tune_from, race_epochs
        self.pool, self.random_subnets = pool, random_subnets
        self.supernet_learning_rate, self.supernet_batch_size = supernet_learning_rate, supernet_batch_size
        self.calibration_examples = calibration_examples
        self.distill = bool(distill)
        # The training settings (learning rate, optimizer) are not searched: trials are not trained, so
        # they could not tell them apart; the winner is fine-tuned with their defaults.
        if kwargs.get("oracle") is None:
            kwargs.setdefault("hyperparameters", _training_defaults(hypermodel))
            kwargs.setdefault("tune_new_entries", True)
        super().__init__(hypermodel, **kwargs)
        objective = self.oracle.objective
        if not objective.name.startswith("val_"):
            raise _checks.error(
                "Expected a validation objective (val_...) for a one-shot search: sub-networks are scored on the "
                f"validation data. Received: objective={objective.name!r}."
            )
        self.supernet: Supernet | None = None
        self._data: dict[str, Any] = {}
        self._scoring_model = None

    # -- search -----------------------------------------------------------------------------

    def search(self, *fit_args, max_time: float | None = None, **fit_kwargs):
        """Trains (or restores) the supernet, runs the trials, then fine-tunes the best `fine_tune` trials.

        Takes `search`'s usual arguments: `x`, `y` (NumPy arrays), `validation_data` or
        `validation_split`, `epochs`, `batch_size`, `callbacks`, `verbose`; and `max_time`
        (seconds): the supernet stops at an epoch's end when it is spent, and no trial or
        fine-tuning starts after.
        """
        seconds = check_max_time(max_time)
        started = time.monotonic()
        x, y, validation = self._split(fit_args, fit_kwargs)
        check = getattr(self.hypermodel, "check_fit_data", None)
        if check is not None:
            check(x, y, validation_data=validation)
        epochs = int(fit_kwargs.get("epochs") or 1)
        batch_size = self.supernet_batch_size or max(int(fit_kwargs.get("batch_size") or 32), 64)
        self._data = {"x": x, "y": y, "validation": validation, "batch_size": batch_size,
                      "fit_batch_size": fit_kwargs.get("batch_size")}
        if self._worker:
            raise _checks.error("Expected a one-shot search in one process (no distributed workers).")
        with ProjectLock(self.project_dir, "one-shot search"):  # one writer, the supernet's training included
            self._one_shot(x, y, validation, epochs, batch_size, seconds, started, fit_kwargs)

    def _one_shot(self, x, y, validation, epochs, batch_size, seconds, started, fit_kwargs) -> None:
        self.supernet = self._train_supernet(x, y, self.supernet_epochs or epochs, batch_size, seconds, started)
        left = None if seconds is None else seconds - (time.monotonic() - started)
        if left is not None and left <= 0:
            self._write_record()
            return
        kwargs = {k: v for k, v in fit_kwargs.items() if k not in ("validation_split", "x", "y")}
        kwargs["validation_data"] = validation
        # The supernet's traced graphs are many long-lived objects: every garbage collection (Keras
        # Tuner collects around each build) would walk them all, about 0.3 s each. Frozen, they are
        # left out of collections until the search ends.
        with frozen_while_searching():
            super().search(x, y, max_time=left, **kwargs)
            left = None if seconds is None else seconds - (time.monotonic() - started)
            self._fine_tune_best(self.fine_tune_epochs or epochs, fit_kwargs, left)
        self._write_record()

    def _split(self, fit_args, fit_kwargs):
        args = list(fit_args)
        x = fit_kwargs.get("x", args[0] if args else None)
        y = fit_kwargs.get("y", args[1] if len(args) > 1 else None)
        x, y = _arrays("x", x), _arrays("y", y)
        validation = fit_kwargs.get("validation_data")
        split = fit_kwargs.get("validation_split")
        if validation is None and split:
            if not 0 < float(split) < 1:
                raise _checks.error(f"Expected validation_split in (0, 1). Received: validation_split={split!r}.")
            cut = int(len(x) * (1 - float(split)))  # the last examples, as Keras takes them
            x, y, validation = x[:cut], y[:cut], (x[cut:], y[cut:])
        if not isinstance(validation, (tuple, list)) or len(validation) < 2:
            raise _checks.error(
                "Expected validation_data=(x, y) or a validation_split for a one-shot search (sub-networks are "
                f"scored on it). Received: validation_data={type(validation).__name__}."
            )
        return x, y, (_arrays("validation_data[0]", validation[0]), _arrays("validation_data[1]", validation[1]))

    def _train_supernet(self, x, y, epochs: int, batch_size: int, seconds, started) -> Supernet:
        path = Path(self.project_dir) / SUPERNET_FILE
        supernet = Supernet(self.hypermodel, seed=self._seed(), learning_rate=self.supernet_learning_rate,
                            random_subnets=self.random_subnets, pool=self.pool, distill=self.distill,
                            admit=self._within_budgets)
        if path.exists():
            supernet.restore(path)  # a resumed search: the epochs done are not trained again
        saved = [time.monotonic()]

        def checkpoint(net: Supernet) -> None:
            now = time.monotonic()
            out_of_time = seconds is not None and now - started >= seconds
            if out_of_time or net.epochs_done >= epochs or now - saved[0] >= CHECKPOINT_SECONDS:
                net.save(path)
                saved[0] = time.monotonic()
            if out_of_time:
                raise _OutOfTime

        with contextlib.suppress(_OutOfTime):  # max_time: the epochs done are the supernet
            supernet.train(x, y, epochs=epochs, batch_size=batch_size, on_epoch_end=checkpoint)
        return supernet

    def _within_budgets(self, spec) -> bool:
        return ((self.max_params is None or spec.count_params() <= self.max_params)
                and (self.max_macs is None or spec.count_macs() <= self.max_macs))

    def _seed(self) -> int:
        seed = getattr(self.hypermodel, "seed", None)
        return int(seed) if seed is not None else int(getattr(self.oracle, "seed", 0) or 0)

    # -- trials -----------------------------------------------------------------------------

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        """Scores the trial's sub-network on the validation data with the supernet's weights; trains nothing."""
        if self.supernet is None:
            raise _checks.error("Expected search() to train the supernet before the trials. Received: a trial "
                                "run outside search().")
        hp = trial.hyperparameters
        spec = self.hypermodel.architecture(hp)
        calibration = self._data["x"][: self.calibration_examples]
        batch_size = min(256, self.calibration_examples)
        x, y = self._data["validation"]
        if self.dtype_policy is None:  # scored as the supernet computes it: no Keras model built
            weights, predicted = self.supernet.read_off(spec, calibration, x, batch_size=batch_size)
            scored = evaluate(self._scorer(hp), x, y, predicted=predicted)
            metrics = {f"val_{name}": value for name, value in scored.items()}
            _write_weights(self._read_off_path(trial.trial_id), weights)
        else:  # the model as the policy computes it
            model = self.build_model(hp)
            self.supernet.load_into(model, spec, calibration, batch_size=batch_size)
            metrics = {f"val_{name}": value for name, value in evaluate(model, x, y).items()}
            model.save_weights(self.checkpoint_path(trial.trial_id))
        metrics[SUPERNET_PREFIX + self.oracle.objective.name] = metrics[self.oracle.objective.name]
        write_note(self.project_dir, trial.trial_id, {"one_shot": {"supernet": metrics[self.oracle.objective.name]}})
        return self._with_cost(trial, metrics)

    def _scorer(self, hp):
        """A model compiled as the trials' are, whose loss and metrics score the outputs read off the
        supernet (built once: every network of the space is compiled alike)."""
        if self._scoring_model is None:
            self._scoring_model = self.build_model(hp)
        return self._scoring_model

    def _read_off_path(self, trial_id: str) -> Path:
        return trial_directory(self, trial_id) / READ_OFF_FILE

    def _load_model(self, trial):
        # A trial scored off the supernet keeps the weights it was scored with (read_off.npz); a
        # fine-tuned one, its checkpoint.
        path = self._read_off_path(trial.trial_id)
        if Path(self.checkpoint_path(trial.trial_id)).exists() or not path.exists():
            return super()._load_model(trial)
        model = self.build_model(trial.hyperparameters)
        set_layer_weights(model, _read_weights(path))
        return model

    # -- fine-tuning ----------------------------------------------------------------------------

    def _by_supernet(self) -> list:
        """The scored trials, best first by their supernet score (what chose the ones fine-tuned)."""
        objective = self.oracle.objective
        name = SUPERNET_PREFIX + objective.name
        scored = [t for t in self.oracle.trials.values() if t.status == "COMPLETED" and t.metrics.exists(name)]
        return sorted(scored, key=lambda t: t.metrics.get_best_value(name), reverse=objective.direction == "max")

    def ranked_trials(self, num_trials: int = 1) -> list:
        """The best trials: the fine-tuned ones first, by their trained score (equal scores by their
        validation loss, lower first), then the others by their supernet score (a score read off the
        supernet is not comparable with a trained one).

        `get_best_models` and `get_best_hyperparameters` follow this order. The tie-break matters
        where the validation data saturate: on the digits images three fine-tuned networks scored
        0.997, 0.997 and 0.994 validation accuracy (359 images) and the first of the tied two, in
        the trials' order, was returned.
        """
        objective = self.oracle.objective
        tuned = {trial_id for trial_id in self.oracle.trials
                 if "fine_tuned" in read_note(self.project_dir, trial_id).get("one_shot", {})}
        sign = 1.0 if objective.direction == "max" else -1.0

        def order(trial):
            loss = trial.metrics.get_best_value("val_loss") if trial.metrics.exists("val_loss") else None
            return (sign * trial.score, -loss if loss is not None and math.isfinite(loss) else -math.inf)

        first = sorted((t for t in self.oracle.trials.values() if t.trial_id in tuned), key=order, reverse=True)
        rest = [t for t in self._by_supernet() if t.trial_id not in tuned]
        return (first + rest)[:num_trials]

    def get_best_models(self, num_models: int = 1):
        return [self.load_model(trial) for trial in self.ranked_trials(num_models)]

    def get_best_hyperparameters(self, num_trials: int = 1):
        return [trial.hyperparameters for trial in self.ranked_trials(num_trials)]

    def _fine_tune_best(self, epochs: int, fit_kwargs: dict, left: float | None) -> None:
        started = time.monotonic()

        def out_of_time() -> bool:
            return left is not None and time.monotonic() - started >= left

        # The same ones when a search resumes; those fine-tuned already are not trained again.
        waiting = [trial for trial in self._by_supernet()[:self.fine_tune]
                   if "fine_tuned" not in read_note(self.project_dir, trial.trial_id).get("one_shot", {})]
        race = self._race_length(epochs)
        if len(waiting) < 2 or race is None:
            for trial in waiting:
                if out_of_time():
                    break
                run = self._start_fine_tuning(trial, epochs, fit_kwargs)
                run.fit(epochs)
                self._finish_fine_tuning(run)
            return
        runs = []
        for trial in waiting:  # the race: every one trains the first epochs of its schedule
            if out_of_time():
                break
            run = self._start_fine_tuning(trial, epochs, fit_kwargs)
            run.fit(race)
            runs.append(run)
        if not runs:
            return
        objective = self.oracle.objective
        sign = 1.0 if objective.direction == "max" else -1.0
        winner = max(runs, key=lambda r: (sign * r.keep.best, -r.keep.best_loss))  # ties: the lower loss
        for run in runs:  # the others stop here, with their best epoch so far
            if run is not winner:
                self._finish_fine_tuning(run)
        if not out_of_time():
            winner.fit(epochs)  # the winner goes on to the schedule's end
        self._finish_fine_tuning(winner)

    def _race_length(self, epochs: int) -> int | None:
        """The race's epochs, or None where every fine-tuned trial trains every epoch."""
        race = max(1, round(epochs / 10)) if self.race_epochs is None else self.race_epochs
        return race if 0 < race < epochs else None

    def _start_fine_tuning(self, trial, epochs: int, fit_kwargs: dict) -> _FineTuning:
        model = self.load_model(trial) if self.fine_tune_from == "supernet" else self.build_model(trial.hyperparameters)
        objective = self.oracle.objective
        patience, tail = fine_tuning_patience(epochs)
        cosine = CosineLearningRate(epochs) if self.fine_tune_schedule == "cosine" else None
        # Under the cosine a plateau anneals the rest of the schedule over `tail` epochs, then stops.
        keep = KeepBest(objective.name, objective.direction, patience=patience, anneal=cosine, tail=tail)
        callbacks = ([cosine] if cosine is not None else []) + [keep]
        callbacks += list(self.copy_callbacks(fit_kwargs.get("callbacks") or []))

        def fit(initial_epoch: int, until: int):
            self.hypermodel.fit(trial.hyperparameters, model, self._data["x"], self._data["y"], epochs=until,
                                initial_epoch=initial_epoch, batch_size=self._data["fit_batch_size"],
                                validation_data=self._data["validation"], callbacks=callbacks,
                                verbose=fit_kwargs.get("verbose", 0))

        return _FineTuning(trial, model, keep, fit)

    def _finish_fine_tuning(self, run: _FineTuning) -> None:
        """Restores the run's best epoch, saves it and makes its score the trial's objective."""
        objective = self.oracle.objective
        run.keep.restore()
        metrics = {f"val_{name}": value for name, value in evaluate(run.model, *self._data["validation"]).items()}
        run.model.save_weights(self.checkpoint_path(run.trial.trial_id))
        rescore(self.oracle, run.trial, metrics)
        supernet = run.trial.metrics.get_best_value(SUPERNET_PREFIX + objective.name)
        write_note(self.project_dir, run.trial.trial_id, {"one_shot": {
            "supernet": supernet, "fine_tuned": metrics[objective.name], "fine_tune_epochs": run.epochs or None}})

    def _write_record(self) -> None:
        objective = self.oracle.objective.name
        trials = []
        for trial_id, trial in sorted(self.oracle.trials.items()):
            note = read_note(self.project_dir, trial_id).get("one_shot", {})
            if "supernet" in note:
                trials.append({"trial": trial_id, "supernet": note["supernet"], "fine_tuned": note.get("fine_tuned"),
                               "fine_tune_epochs": note.get("fine_tune_epochs"),
                               "params": self.hypermodel.architecture(trial.hyperparameters).count_params()})
        tuned = [t for t in trials if t["fine_tuned"] is not None]
        record = {
            "objective": objective,
            "supernet": None if self.supernet is None else {
                "epochs": self.supernet.epochs_done, "history": self.supernet.history,
                "shapes_trained": len(self.supernet._steps), "pool": len(self.supernet.pool)},
            "trials": trials,
            "spearman": _spearman([t["supernet"] for t in tuned], [t["fine_tuned"] for t in tuned]),
        }
        write_json(Path(self.project_dir) / ONE_SHOT_FILE, record)


def fine_tuning_patience(epochs: int) -> tuple[int, int]:
    """The fine-tuning's patience (epochs without improvement: a sixth of `epochs`, at least 5) and,
    under the cosine, the tail a plateau anneals the rest of the schedule over (a tenth, at least 3).

    Example:
        >>> fine_tuning_patience(60)
        (10, 6)
    """
    return max(5, epochs // 6), max(3, epochs // 10)


class _FineTuning:
    """One fine-tuning in progress: its model, its best-epoch keeper, and how far it has trained."""

    def __init__(self, trial, model, keep: KeepBest, fit):
        self.trial, self.model, self.keep, self._fit = trial, model, keep, fit
        self.epochs = 0

    def fit(self, until: int) -> None:
        """Trains on from the last epoch to epoch `until` (its schedule and optimizer state go on)."""
        if self.epochs < until and not self.keep.stopped:
            self._fit(self.epochs, until)
            self.epochs = self.keep.epochs


class KeepBest(keras.callbacks.Callback):
    """Keeps the best epoch's weights by `monitor` across successive `fit` calls on one model, and stops
    training after `patience` epochs without improvement; `restore()` puts the best weights back.

    Unlike `keras.callbacks.EarlyStopping`, it does not start over at each `fit`: a training run
    split into several calls (`initial_epoch` set) is watched as one. An epoch that equals the
    best by `monitor` with a lower validation loss (`val_loss`, where it is reported and is not
    `monitor`) takes the best epoch's place (its weights are kept; patience counts from the
    last strict improvement): saturated accuracy on a small validation set ties often. Given a `CosineLearningRate`
    (`anneal`) and a `tail`, a plateau does not stop the training at once: the rest of the cosine is
    annealed over the next `tail` epochs (the low rates at a cosine's end are where it gains most),
    then the training stops.

    Example:
        >>> import numpy as np, keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> keep = KeepBest("loss", "min", patience=10)
        >>> _ = model.fit(np.ones((8, 2)), np.ones(8), epochs=2, verbose=0, callbacks=[keep])
        >>> _ = model.fit(np.ones((8, 2)), np.ones(8), initial_epoch=2, epochs=4, verbose=0, callbacks=[keep])
        >>> keep.epochs, keep.best_epoch
        (4, 3)
        >>> keep.restore()
    """

    def __init__(self, monitor: str, mode: str, patience: int, anneal: CosineLearningRate | None = None,
                 tail: int = 0):
        super().__init__()
        self.monitor, self.mode, self.patience = monitor, mode, int(patience)
        self.anneal, self.tail = anneal, int(tail)
        self.best: float = -math.inf if mode == "max" else math.inf
        self.best_loss: float = math.inf  # the validation loss at the best epoch (inf where none is reported)
        self.best_epoch: int | None = None
        self._improved: int | None = None  # the last epoch that improved `monitor` strictly
        self.best_weights: list | None = None
        self.epochs = 0
        self.stopped = False
        self.ends: int | None = None  # where an annealing started on a plateau ends

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1
        value = (logs or {}).get(self.monitor)
        if value is not None:
            value = float(value)
            loss = (logs or {}).get("val_loss") if self.monitor != "val_loss" else None
            loss = math.inf if loss is None or not math.isfinite(float(loss)) else float(loss)
            if value > self.best if self.mode == "max" else value < self.best:
                self.best, self.best_epoch, self.best_weights = value, epoch, self.model.get_weights()
                self.best_loss, self._improved = loss, epoch
            elif value == self.best and loss < self.best_loss:  # a tie, with a lower validation loss
                self.best_epoch, self.best_weights, self.best_loss = epoch, self.model.get_weights(), loss
            if self.ends is None and self._improved is not None and self._improved != epoch and \
                    epoch - self._improved >= self.patience:
                if self.anneal is None or self.tail <= 0:
                    self.ends = self.epochs
                else:  # a plateau: the rest of the schedule is annealed over the next `tail` epochs
                    self.ends = self.epochs + self.tail
                    self.anneal.finish_by(self.ends)
        if self.ends is not None and self.epochs >= self.ends:
            self.stopped = self.model.stop_training = True

    def restore(self) -> None:
        """Sets the model's weights to the best epoch's (nothing where no epoch reported `monitor`)."""
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class _OutOfTime(Exception):
    """The time budget ran out during supernet training."""


class CosineLearningRate(keras.callbacks.Callback):
    """Anneals the optimizer's learning rate along a cosine from its value at the start of `fit` to zero
    over `epochs` epochs, batch by batch; an optimizer with a `LearningRateSchedule` is left as it is.
    A training split over several `fit` calls on one model (`initial_epoch` set) follows one schedule.

    Example:
        >>> import numpy as np, keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        >>> _ = model.fit(np.zeros((8, 2)), np.zeros(8), epochs=2, batch_size=4, verbose=0,
        ...               callbacks=[CosineLearningRate(2)])
        >>> round(float(model.optimizer.learning_rate), 5)  # the last batch's: 0.01 * (1 + cos(pi * 3 / 4)) / 2
        0.00146
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = int(epochs)
        self._base: float | None = None
        self._optimizer = None
        self._epoch = 0
        self._steps = 1
        self._short: tuple[int, float, int] | None = None  # (from step, progress there, last epoch)

    def finish_by(self, epoch: int) -> None:
        """Compresses the rest of the schedule (from the next epoch) so that it reaches zero at the end
        of epoch `epoch` (counted from 1): the cosine goes on from where it stands, faster. A schedule
        that ends sooner anyway is left as it is."""
        if epoch >= (self._short[2] if self._short is not None else self.epochs):
            return
        step = (self._epoch + 1) * self._steps
        self._short = (step, self._progress(step), int(epoch))

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if optimizer is self._optimizer:  # a training split over several fits goes on along one schedule
            return
        self._optimizer, self._base, self._short = optimizer, None, None
        try:
            base = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            optimizer.learning_rate = base  # raises TypeError where a schedule sets it
        except TypeError:
            return
        self._base = base

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._base is None:
            return
        self._steps = max(1, int(self.params.get("steps") or 1))
        done = self._progress(self._epoch * self._steps + batch)
        self.model.optimizer.learning_rate = self._base * 0.5 * (1 + math.cos(math.pi * done))

    def _progress(self, step: int) -> float:
        """How far along the cosine (0 to 1) batch `step` (counted over the whole run) is."""
        if self._short is None:
            return min(1.0, step / max(1, self.epochs * self._steps))
        start, done, last = self._short
        return min(1.0, done + (1 - done) * (step - start) / max(1, last * self._steps - start))


def _training_defaults(hypermodel) -> keras_tuner.HyperParameters:
    """The hyperparameters `build` declares beyond the structure, fixed: a range of floats (the learning
    rate) at its middle (on its own scale: log or linear), any other at its default.

    The trials are not trained, so they cannot choose these; the middle of the range is the least
    committal guess (Keras Tuner's default of a range is its low end: Adam at 1e-3 for the default
    (1e-3, 1e-2), where the middle is 3.2e-3; measured on MNIST-1D, the same three sub-networks
    fine-tuned at a constant 3e-3 reached 0.961 mean test accuracy, at 1e-3 0.955).
    """
    built = keras_tuner.HyperParameters()
    hypermodel.build(built)
    structural = keras_tuner.HyperParameters()
    hypermodel.architecture(structural)
    names = {p.name for p in structural.space}
    fixed = keras_tuner.HyperParameters()
    for parameter in built.space:
        if parameter.name in names:
            continue
        value = built.values[parameter.name]
        if isinstance(parameter, Float) and parameter.max_value > parameter.min_value:
            low, high = float(parameter.min_value), float(parameter.max_value)
            value = math.sqrt(low * high) if parameter.sampling == "log" else (low + high) / 2
        fixed.Fixed(parameter.name, value)
    return fixed


def _write_weights(path: Path, weights: dict[str, list]) -> None:
    """Each layer's weights (`{layer name: [arrays]}`) to an .npz file, atomically."""
    import io

    arrays = {f"{name}|{i}": np.asarray(value) for name, values in weights.items() for i, value in enumerate(values)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    write_atomically(path, buffer.getvalue())


def _read_weights(path: Path) -> dict[str, list]:
    weights: dict[str, list] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in sorted(data.files, key=lambda k: (k.rpartition("|")[0], int(k.rpartition("|")[2]))):
            weights.setdefault(key.rpartition("|")[0], []).append(data[key])
    return weights


def evaluate(model, x, y, batch_size: int = 2048, predicted=None) -> dict[str, float]:
    """The compiled loss and metrics of `model` on `(x, y)`, computed eagerly (no traced evaluation);
    with `predicted` (the outputs on `x`, computed elsewhere), those outputs are scored.

    Example:
        >>> import numpy as np, keras_tuner, keras_structopt as kso
        >>> model = kso.DenseHyperModel(input_shape=(4,), outputs=3, num_layers=1, units=8).build(
        ...     keras_tuner.HyperParameters())
        >>> sorted(evaluate(model, np.zeros((10, 4), "float32"), np.arange(10) % 3))
        ['accuracy', 'loss']
    """
    model.reset_metrics()
    total, count = 0.0, 0
    metrics: dict[str, float] = {}
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        out = model(xb, training=False) if predicted is None else keras.ops.convert_to_tensor(
            predicted[start:start + batch_size])
        loss = float(model.compute_loss(x=xb, y=yb, y_pred=out, training=False))
        total, count = total + loss * len(xb), count + len(xb)
        metrics = {name: float(value) for name, value in model.compute_metrics(xb, yb, out).items()}
    metrics["loss"] = total / max(count, 1)
    return {name: value for name, value in metrics.items() if math.isfinite(value) or name == "loss"}


def rescore(oracle, trial, metrics: dict[str, float]) -> None:
    """Replaces a finished trial's metrics with new values (its fine-tuned ones) and scores it again."""
    for name, value in metrics.items():
        _keras_tuner.replace_metric(trial, name, value)
    oracle.score_trial(trial)
    _keras_tuner.save_trial(oracle, trial)


def read_one_shot(project_dir) -> dict | None:
    """The one-shot record of a project (`one_shot.json`), or None.

    Example:
        >>> read_one_shot(getfixture("tmp_path")) is None
        True
    """
    return read_json(Path(project_dir) / ONE_SHOT_FILE) or None

