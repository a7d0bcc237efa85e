"""A keras-structopt HyperModel under Ray Tune: its space translated, ASHA or Ray's search algorithms.

`ray_search(hypermodel, x, y, validation_data=..., epochs=...)` runs the HyperModel as a Ray
Tune trainable (the function API, actors reused): each trial builds the network its
configuration selects, trains it an epoch at a time, reports the epoch's metrics with a
checkpoint (the weights and the epoch), and writes its learning curve into
`<storage>/<name>/structopt/trial_<id>/curves.json` in the project's own format, so
`kso.search.learning_curves(result)` reads a Ray search as it reads a Keras Tuner one.

The space: each Keras Tuner hyperparameter becomes a Ray Tune distribution of the same name
(`Int` -> `randint`/`qrandint`/`lograndint`, `Float` -> `uniform`/`quniform`/`loguniform`,
`Choice` and `Boolean` -> `choice`, `Fixed` -> the value). Ray's random and grid variants
sample every hyperparameter; the trainable applies only those active under the sampled
depth and choices (the others do not change the network, and they are dropped from the
trial's recorded hyperparameters). With `search_alg="optuna"`, Ray's Optuna searcher asks
only the active ones (a define-by-run space), so conditional spaces stay conditional for the
sampler too.

Network: Ray starts a local cluster on 127.0.0.1 only (`on_loopback`). While it runs,
usage statistics are disabled and `http_proxy`/`https_proxy` point at a closed loopback
port (with `no_proxy` for the loopback names), because Ray probes cloud-metadata addresses
at start-up even with usage statistics off; Ray's habit of replacing 127.0.0.1 by the
machine's address for a local node is turned off. The cluster is shut down (and its
processes reaped) afterwards unless one was already running, and the environment is
restored. `restore=True` continues an interrupted experiment in the same
storage (`Tuner.restore`, restarting errored and unfinished trials from their checkpoints).
Ray Tune is an optional dependency: `pip install "keras-structopt[ray]"`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import keras_tuner

from keras_structopt import _checks, _keras_tuner
from keras_structopt._trial_files import CurveRecorder, trial_folder
from keras_structopt._types import Data, Inputs, PathLike
from keras_structopt.search._optuna import SKIP, assign_active, log_step_values

SCHEDULERS = ("asha", "fifo")
SEARCH_ALGORITHMS = ("random", "optuna")
LOOPBACK = "127.0.0.1"


def loopback_environment() -> dict[str, str]:
    """The environment that keeps Ray on loopback (see the module docstring); applied by `ray_search`.

    Example:
        >>> loopback_environment()["no_proxy"]
        '127.0.0.1,localhost,::1'
    """
    closed = f"http://{LOOPBACK}:9"  # the discard port: nothing listens, every proxied request fails at once
    return {"RAY_USAGE_STATS_ENABLED": "0", "http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed,
            "HTTPS_PROXY": closed, "no_proxy": "127.0.0.1,localhost,::1", "NO_PROXY": "127.0.0.1,localhost,::1",
            "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


@contextlib.contextmanager
def on_loopback():
    """Within it, a Ray cluster started here serves on 127.0.0.1 and proxies nothing; restored after.

    Sets `loopback_environment()` in `os.environ` (Ray's processes inherit it) and turns off
    Ray's choice of a "remotely reachable" address for a local node (on Linux it replaces
    127.0.0.1 by the machine's address; the setting Ray reads is
    `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`, also set on its module if Ray is already imported).

    Example:
        >>> import os
        >>> with on_loopback():
        ...     os.environ["http_proxy"]
        'http://127.0.0.1:9'
    """
    settings = {**loopback_environment(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    constants = sys.modules.get("ray._private.ray_constants")
    cluster = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None:  # as Ray computes it from the (restored) environment
            constants.ENABLE_RAY_CLUSTER = cluster if cluster is not None else constants.env_bool(  # type: ignore[attr-defined]
                constants.ENABLE_RAY_CLUSTERS_ENV_VAR, not constants.IS_WINDOWS_OR_OSX)


def ray_space(space: keras_tuner.HyperParameters) -> dict[str, Any]:
    """Ray Tune distributions for every hyperparameter of a Keras Tuner space.

    Example:
        >>> import keras_tuner
        >>> space = keras_tuner.HyperParameters()
        >>> _ = space.Int("units", 8, 64, sampling="log"); _ = space.Choice("connection", ["plain", "dense"])
        >>> sorted(ray_space(space))
        ['connection', 'units']
    """
    with on_loopback():  # the first import of Ray reads its address setting
        from ray import tune

    result: dict[str, Any] = {}
    for hp in space.space:
        kind = type(hp).__name__
        if kind == "Fixed":
            result[hp.name] = hp.value
        elif kind == "Boolean":
            result[hp.name] = tune.choice([False, True])
        elif kind == "Choice":
            result[hp.name] = tune.choice(list(hp.values))
        elif hp.sampling == "log" and hp.step not in (None, 1):  # a multiplicative step: its values
            result[hp.name] = tune.choice(log_step_values(hp))
        elif kind == "Int":
            if hp.sampling == "log":
                result[hp.name] = tune.lograndint(hp.min_value, hp.max_value + 1)
            else:
                result[hp.name] = tune.qrandint(hp.min_value, hp.max_value, hp.step or 1)
        elif hp.sampling == "log":
            result[hp.name] = tune.loguniform(hp.min_value, hp.max_value)
        elif hp.step:
            result[hp.name] = tune.quniform(hp.min_value, hp.max_value, hp.step)
        else:
            result[hp.name] = tune.uniform(hp.min_value, hp.max_value)
    return result


def active_values(space: keras_tuner.HyperParameters, config: dict) -> dict[str, Any]:
    """The values of `config` that are active in `space` (declaration order: parents first).

    Example:
        >>> import keras_tuner
        >>> space = keras_tuner.HyperParameters()
        >>> _ = space.Int("depth", 1, 2)
        >>> with space.conditional_scope("depth", [2]):
        ...     _ = space.Int("units_2", 8, 64)
        >>> active_values(space, {"depth": 1, "units_2": 32})
        {'depth': 1}
    """
    return assign_active(space, lambda hp: config.get(hp.name, SKIP))


def _flat(config: dict, prefix: str = "") -> dict:
    """Ray's searchers may nest "block_0/units" as {"block_0": {"units": ...}}: the Keras Tuner names back."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _trainable(config, hypermodel=None, data=None, epochs=1, batch_size=32, project_dir="."):
    """One Ray Tune trial: build, then train an epoch at a time, reporting and checkpointing each."""
    import keras
    from ray import tune

    space = keras_tuner.HyperParameters()
    hypermodel.build(space)  # declares the space (the default network; discarded)
    values = active_values(space, _flat(config))
    hp = space.copy()
    hp.values.update(values)
    keras.backend.clear_session()
    model = hypermodel.build(hp)
    trial_id = tune.get_context().get_trial_id()
    folder = trial_folder(project_dir, trial_id)
    folder.mkdir(parents=True, exist_ok=True)
    seen = {name: os.environ.get(name) for name in ("http_proxy", "https_proxy", "no_proxy", "RAY_USAGE_STATS_ENABLED")}
    (folder / "trial.json").write_text(json.dumps({"trial_id": trial_id, "hyperparameters": values,
                                                   "environment": seen}))
    x, y, validation = data
    recorder = CurveRecorder(folder, validation_size=len(validation[1]))
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            model.load_weights(os.path.join(directory, "model.weights.h5"))
            start = json.loads(Path(directory, "state.json").read_text())["epoch"]
        recorder.truncate(start)  # epochs recorded after the checkpoint are trained again
    else:
        recorder.on_train_begin()
    for epoch in range(start, epochs):
        history = hypermodel.fit(hp, model, x, y, validation_data=validation, epochs=epoch + 1, initial_epoch=epoch,
                                 batch_size=batch_size, verbose=0)
        logs = {name: float(values[-1]) for name, values in history.history.items()}
        recorder.on_epoch_end(epoch, logs)
        with tempfile.TemporaryDirectory() as directory:
            model.save_weights(os.path.join(directory, "model.weights.h5"))
            Path(directory, "state.json").write_text(json.dumps({"epoch": epoch + 1}))
            tune.report({**logs, "epoch": epoch + 1}, checkpoint=tune.Checkpoint.from_directory(directory))


class _DefineByRun:
    """Ray's Optuna searcher's space: asks the active hyperparameters, returns the fixed ones (picklable)."""

    def __init__(self, space: keras_tuner.HyperParameters):
        self.space = space

    def __call__(self, trial):
        from keras_structopt.search._optuna import suggest_values

        values = suggest_values(self.space, trial)
        return {k: v for k, v in values.items() if k not in trial.params} or None


def _each(results) -> list:
    """The results of a Ray `ResultGrid`, as a list."""
    return [results[i] for i in range(len(results))]


@dataclasses.dataclass
class _Trial:
    trial_id: str
    status: str
    hyperparameters: keras_tuner.HyperParameters
    score: float | None
    metrics: Any  # Keras Tuner's MetricsTracker of every reported epoch (best values as a trial has them)
    last: dict  # the last metrics Ray saw reported
    config: dict  # what the searcher sampled, inactive hyperparameters included (Ray's variants sample all)


@dataclasses.dataclass
class _Trials:
    trials: dict[str, _Trial]
    objective: Any

    def get_trial(self, trial_id: str) -> _Trial:
        return self.trials[trial_id]


@dataclasses.dataclass
class RaySearch:
    """What `ray_search` returns: Ray's `ResultGrid` and the trials as keras-structopt reads them.

    It stands in for a tuner where the project's reports read one
    (`kso.search.learning_curves(result)`, `kso.search.pareto_front(result)`):
    `oracle.trials` (each trial's id, status, active hyperparameters, best score and
    metrics), `oracle.objective`, `hypermodel` and `project_dir` (where the curves are).

    Attributes:
        results: Ray Tune's `ResultGrid`.
        hypermodel: The HyperModel searched.
        project_dir: The folder of the trials' curves.
        oracle: `.trials`, by Ray trial id.
        metric, mode: What was optimised.
        node_ip: The address the cluster's nodes served on (127.0.0.1; comma-separated if
            several).

    Example:
        >>> from keras_structopt.search import RaySearch
        >>> sorted(f.name for f in __import__("dataclasses").fields(RaySearch))[:3]
        ['hypermodel', 'metric', 'mode']
    """

    results: Any
    hypermodel: Any
    project_dir: str
    oracle: _Trials
    metric: str
    mode: str
    node_ip: str

    def best_trial(self) -> _Trial:
        """The trial with the best value of `metric` at any epoch."""
        scored = [t for t in self.oracle.trials.values() if t.score is not None]
        if not scored:
            raise _checks.error("Expected a finished trial. Received: a Ray search in which no trial reported.")
        sign = 1.0 if self.mode == "max" else -1.0
        return max(scored, key=lambda t: sign * float(t.score or 0.0))

    def best_model(self):
        """The best trial's network, rebuilt with the weights of its last checkpoint."""
        best = self.best_trial()
        result = next(r for r in _each(self.results) if r.metrics.get("trial_id") == best.trial_id)
        hp = keras_tuner.HyperParameters()
        self.hypermodel.build(hp)
        hp.values.update(best.hyperparameters.values)
        model = self.hypermodel.build(hp)
        with result.checkpoint.as_directory() as directory:
            model.load_weights(os.path.join(directory, "model.weights.h5"))
        return model


def ray_search(hypermodel: keras_tuner.HyperModel, x: Inputs, y: Any = None, *, validation_data: Data, epochs: int,
               num_samples: int = 10, metric: str | None = None, mode: str | None = None, scheduler: str = "asha",
               search_alg: str = "random", max_concurrent_trials: int = 2, batch_size: int = 32,
               storage_path: PathLike | None = None, name: str = "ray", seed: int | None = None,
               restore: bool = False, cpus_per_trial: float = 1.0, num_cpus: int | None = None) -> RaySearch:
    """Runs a Ray Tune search over a HyperModel's space; returns a `RaySearch`.

    Args:
        hypermodel: A keras-structopt HyperModel (any Keras Tuner HyperModel whose `fit`
            accepts `validation_data`).
        x, y: Training data (as the HyperModel's `fit` takes it).
        validation_data: `(x, y)` for the metric.
        epochs: Epochs per trial (ASHA's maximum).
        num_samples: Trials.
        metric, mode: Default: `val_loss`/`min` for regression, else `val_accuracy`/`max`.
        scheduler: `"asha"` (stops poor trials at rungs of 1, 2, 4, ... epochs) or `"fifo"`.
        search_alg: `"random"` (Ray's variant generator) or `"optuna"` (TPE, conditional).
        max_concurrent_trials: Trials at once.
        batch_size: Training batch size.
        storage_path: Where Ray keeps the experiment (default: `./ray_results`).
        name: The experiment's name (its folder under `storage_path`).
        seed: Seeds the searcher and each trial's weights (via the HyperModel's seed).
        restore: Continue the experiment in `storage_path/name` (after a kill or an interrupt).
        cpus_per_trial: CPUs each trial holds.
        num_cpus: CPUs the local Ray node offers (default: all).

    Interrupted (Ctrl-C, or SIGTERM in the main thread), Ray Tune saves the experiment; this
    function then shuts down the local Ray cluster it started and raises `KeyboardInterrupt`
    saying how many trials finished and that `restore=True` continues (Ray Tune itself would
    return as if the search had ended).

    Example:
        >>> import keras_structopt as kso
        >>> from keras_structopt.data import load_digits_split
        >>> data = load_digits_split(seed=0)
        >>> result = ray_search(kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=[8, 16]),
        ...     *data.train, validation_data=data.validation, epochs=2, num_samples=2, seed=0,
        ...     storage_path=getfixture("tmp_path"), num_cpus=2)  # doctest: +SKIP
    """
    _checks.positive_int("epochs", epochs)
    _checks.positive_int("num_samples", num_samples)
    _checks.positive_int("max_concurrent_trials", max_concurrent_trials)
    _checks.one_of("scheduler", scheduler, SCHEDULERS)
    _checks.one_of("search_alg", search_alg, SEARCH_ALGORITHMS)
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise _checks.error(f"Expected validation_data=(x, y). Received: validation_data of type "
                            f"{type(validation_data).__name__}.")
    regression = getattr(hypermodel, "task", None) == "regression"
    metric = metric or ("val_loss" if regression else "val_accuracy")
    mode = mode or ("min" if metric.endswith("loss") else "max")
    _checks.one_of("mode", mode, ("min", "max"))
    with on_loopback():
        return _ray_search(hypermodel, x, y, validation_data, epochs, num_samples, metric, mode, scheduler,
                           search_alg, max_concurrent_trials, batch_size, storage_path, name, seed, restore,
                           cpus_per_trial, num_cpus)


@contextlib.contextmanager
def _terminated_as_interrupt():
    """SIGTERM (in the main thread) raises KeyboardInterrupt while Ray Tune runs, so that the local cluster
    is shut down on the way out (by default SIGTERM would end this process and leave Ray's behind)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("ray_search received SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ray_search(hypermodel, x, y, validation_data, epochs, num_samples, metric, mode, scheduler, search_alg,
                max_concurrent_trials, batch_size, storage_path, name, seed, restore, cpus_per_trial,
                num_cpus) -> RaySearch:
    try:
        import ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    except ImportError:  # pragma: no cover - the test extras install it
        raise _checks.error("Expected Ray Tune to be installed for ray_search. Received: no module named 'ray'; "
                            "install it with pip install \"keras-structopt[ray]\".") from None
    import ray._private.ray_constants as constants

    constants.ENABLE_RAY_CLUSTER = False  # imported just now: on_loopback could not set it before

    space = keras_tuner.HyperParameters()
    hypermodel.build(space)
    storage = Path(storage_path or "ray_results").resolve()
    project_dir = storage / name / "structopt"
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(_node_ip_address=LOOPBACK, include_dashboard=False, num_cpus=num_cpus, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": loopback_environment()})
    try:
        addresses = sorted({node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")})
        node_ip = ",".join(addresses)  # the address each live node of the cluster serves on
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, hypermodel=hypermodel, data=(x, y, tuple(validation_data)),
                                 epochs=epochs, batch_size=batch_size, project_dir=str(project_dir)),
            {"cpu": cpus_per_trial})
        if restore:
            tuner = tune.Tuner.restore(str(storage / name), trainable=trainable, resume_errored=True,
                                       resume_unfinished=True)
        else:
            chosen = (ASHAScheduler(max_t=epochs, grace_period=1, reduction_factor=2) if scheduler == "asha"
                      else FIFOScheduler())
            from ray.tune.search import BasicVariantGenerator

            # Its own random state: building a seeded HyperModel re-seeds numpy's global one.
            # `max_concurrent` given to the generator itself: Ray's TuneConfig limit alone did not hold
            # the random search's trials back.
            searcher: Any = BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent_trials)
            param_space = ray_space(space)
            if search_alg == "optuna":
                from ray.tune.search.optuna import OptunaSearch

                searcher = OptunaSearch(space=_DefineByRun(space), metric=metric, mode=mode, seed=seed)
                param_space = {}
            limit = max_concurrent_trials if search_alg == "optuna" else None
            tuner = tune.Tuner(
                trainable, param_space=param_space,
                tune_config=tune.TuneConfig(metric=metric, mode=mode, num_samples=num_samples, scheduler=chosen,
                                            search_alg=searcher,  # the random generator limits itself:
                                            max_concurrent_trials=limit,  # Ray ignores this for it
                                            reuse_actors=True),
                run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
            )
        how_to_go_on = (f"the experiment is saved in {str(storage / name)!r}: call ray_search(..., restore=True) "
                        "to continue it")
        try:
            with _terminated_as_interrupt():
                results = tuner.fit()
        except KeyboardInterrupt:  # SIGTERM, or a second Ctrl-C
            raise KeyboardInterrupt(f"ray_search was interrupted; {how_to_go_on}") from None
        unfinished = len(results) - results.num_terminated - results.num_errors  # pending, running or paused
        if unfinished > 0 or (not restore and len(results) < num_samples):
            # Ray Tune answers Ctrl-C by saving the experiment and returning as if it had ended: say it did not.
            raise KeyboardInterrupt(
                f"ray_search was interrupted after {results.num_terminated} of {num_samples} trials; {how_to_go_on}")
    finally:
        if started_here:
            ray.shutdown()  # the local cluster's processes end with it, also when interrupted
    trials = {}
    for result in _each(results):
        trial_id = result.metrics.get("trial_id") if result.metrics else None
        if trial_id is None:
            continue
        recorded = json.loads((trial_folder(project_dir, trial_id) / "trial.json").read_text())
        hp = space.copy()
        hp.values = dict(recorded["hyperparameters"])
        tracker = _keras_tuner.metrics_tracker()
        tracker.register(metric, mode)
        frame = result.metrics_dataframe
        if frame is not None and metric in frame:
            for step, value in enumerate(frame[metric]):
                tracker.update(metric, float(value), step=step)
        score = tracker.get_best_value(metric)
        status = "COMPLETED" if result.error is None else "FAILED"
        trials[trial_id] = _Trial(trial_id, status, hp, None if score is None else float(score), tracker,
                                  dict(result.metrics), _flat(dict(result.config or {})))
    objective = keras_tuner.Objective(metric, mode)
    return RaySearch(results, hypermodel, str(project_dir), _Trials(trials, objective), metric, mode, node_ip)
