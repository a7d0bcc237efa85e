"""One-shot search: one weight-sharing supernet, every trial read off it, the best few fine-tuned."""

import dataclasses
import json
import random

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_structopt as kso
from keras_structopt._trial_files import read_note
from keras_structopt.search import structural_oracle
from keras_structopt.search._one_shot import CosineLearningRate, KeepBest, evaluate
from keras_structopt.search._supernet import Supernet, random_values, shape_of, spec_of


@pytest.fixture(scope="module")
def images():
    return kso.data.load_digits_split("image", seed=0)


@pytest.fixture(scope="module")
def flat():
    return kso.data.load_digits_split("flat", seed=0)


def _draws(hypermodel, count, seed=0):
    rng = random.Random(seed)
    return [spec_of(hypermodel, random_values(hypermodel, rng)) for _ in range(count)]


@pytest.mark.parametrize("case", ["conv", "conv1d", "dense", "recurrent", "recurrent tokens"])
def test_a_sub_network_read_off_the_supernet_is_the_familys_own_model(case, images, flat):
    # Every block kind and connection: the sub-network the supernet computes (sliced, and masked as
    # it trains) is the family's ordinary Keras model with the weights read off, output for output
    # (no dropout: training mode drops at random).
    if case == "conv":
        hypermodel = kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, filters=(8, 24),
                                        connection=["plain", "dense"], dropout=0.0, seed=0)
        x = images.train[0][:64]
    elif case == "conv1d":
        hypermodel = kso.Conv1DHyperModel(input_shape=(64,), outputs=10, filters=(8, 24), pooling=["avg", "flatten"],
                                          dropout=0.0, seed=0)
        x = flat.train[0][:64]
    elif case.startswith("recurrent"):
        # LSTM and GRU, one or both directions, residual or not, over rows of the digit images or
        # over token ids (their pixel values, embedded)
        tokens = case.endswith("tokens")
        hypermodel = kso.RecurrentHyperModel(
            input_shape=(8,) if tokens else (8, 8), outputs=10, vocabulary_size=17 if tokens else None,
            num_layers=(1, 3), units=(4, 16), cell=["lstm", "gru"], connection=["plain", "residual"],
            bidirectional=[False, True], reduce=["last", "mean"], dropout=0.0, seed=0)
        x = flat.train[0][:64].reshape(64, 8, 8)
        x = np.round(x[:, :, 3] * 16).astype("float32") if tokens else x  # pixel values 0..16 as ids
    else:
        hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 3), units=(4, 32),
                                         connection=["plain", "residual", "dense"], batch_norm=[False, True], dropout=0.0,
                                         seed=0)
        x = flat.train[0][:64]
    supernet = Supernet(hypermodel, seed=0, pool=2)
    kinds, padded = set(), 0
    specs = _draws(hypermodel, 8 if case.startswith("recurrent") else 6)
    if case == "recurrent":  # the input (8 features) added to a bidirectional layer's two halves of 4
        options = {"bidirectional": True, "reduce": "mean", "dropout": 0.0, "vocabulary_size": None,
                   "embedding_units": 32}
        specs += [kso.space.Architecture("recurrent", (8, 8), [kso.Block(cell, 4), kso.Block(cell, 4)], outputs=10,
                                         connection="residual", options=options) for cell in ("lstm", "gru")]
    for spec in specs:
        kinds.add((spec.blocks[0].kind, spec.connection))
        _, names, widths, deep, rate = supernet._shape(spec)
        padded += len(deep.blocks) > len(spec.blocks)
        masks = {name: widths[i] for i, name in enumerate(names)}
        sliced = supernet.forward(spec, x, "train")[0].numpy()
        masked = supernet.forward(deep, x, "train", masks=masks, rate=rate)[0].numpy()
        # masked training computes the same network (a shallower stage through the deepest's graph, its
        # extra blocks skipped)
        np.testing.assert_allclose(masked, sliced, rtol=1e-4, atol=1e-5)
        # ... and so does the traced training step (forward and gradients), whose widths are known only
        # when it runs (dynamic slicing)
        step, step_widths, step_rate = supernet._step(spec, False, x[:2])
        _, traced = step(tf.constant(x, tf.float32), tf.constant(np.arange(len(x)) % 10), step_widths, step_rate)
        np.testing.assert_allclose(traced.numpy(), sliced, rtol=1e-4, atol=1e-5)
        model = kso.render(spec, keras)
        supernet.load_into(model, spec, x)
        expected = supernet.forward(spec, x, "infer", supernet.calibrate(spec, x))[0].numpy()
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-5)
        # in training mode (batch statistics: one fused normalisation in the supernet) as Keras trains it
        np.testing.assert_allclose(np.asarray(model(x, training=True)), sliced, rtol=1e-4, atol=1e-5)
        assert kso.architecture_of(model) == spec
    assert len(kinds) >= 2
    # depth is elastic in the conv families' graphs
    assert padded >= 1 if case.startswith("conv") else padded == 0


def test_networks_of_one_shape_share_a_traced_graph():
    a = kso.space.Architecture("dense", (4,), [kso.Block("dense", 8), kso.Block("dense", 6)], outputs=3)
    b = kso.space.Architecture("dense", (4,), [kso.Block("dense", 16), kso.Block("dense", 3)], outputs=3)
    c = kso.space.Architecture("dense", (4,), [kso.Block("dense", 16)], outputs=3)
    assert shape_of(a)[0] == shape_of(b)[0] != shape_of(c)[0]
    assert shape_of(b)[1] == {"block_0_dense": 16, "block_1_dense": 3}


def test_networks_that_differ_only_in_dropout_or_momentum_train_through_one_graph(flat):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=(8, 16), seed=0)
    supernet = Supernet(hypermodel, seed=0, pool=1)
    base = kso.space.Architecture("dense", (64,), [kso.Block("dense", 12), kso.Block("dense", 8)], outputs=10)
    options = dict(base.options)
    specs = [dataclasses.replace(base, options=tuple(sorted({**options, **change}.items())))
             for change in ({"dropout": 0.0}, {"dropout": 0.3}, {"dropout": 0.3, "batch_norm_momentum": 0.5})]
    shapes = [supernet._shape(spec) for spec in specs]
    assert len({shape[0] for shape in shapes}) == 1  # one key: one traced graph
    assert [float(shape[4]) for shape in shapes] == pytest.approx([0.0, 0.3, 0.3])  # the rate is its input
    x = flat.train[0][:32].astype("float32")
    _, names, widths, deep, rate = shapes[0]
    masks = {name: widths[i] for i, name in enumerate(names)}
    # rate 0 through the graph that holds dropout layers is the network without them, exactly
    assert dict(deep.options)["dropout"] > 0 and dict(specs[0].options)["dropout"] == 0
    plain = dataclasses.replace(deep, options=specs[0].options)
    without = supernet.forward(plain, x, "train", masks=masks)[0].numpy()
    np.testing.assert_array_equal(supernet.forward(deep, x, "train", masks=masks, rate=rate)[0].numpy(), without)
    # (and that is the sliced network, up to float rounding: the traced graph slices as it runs)
    np.testing.assert_allclose(without, supernet.forward(specs[0], x, "train")[0].numpy(), rtol=1e-5, atol=1e-6)
    # and a rate drops units: the same graph, another network
    dropped = supernet.forward(deep, x, "train", masks=masks, rate=shapes[1][4])[0].numpy()
    assert not np.allclose(dropped, without)
    steps = {id(supernet._step(spec, False, x[:2])[0]) for spec in specs}
    assert len(steps) == 1


def test_a_one_shot_search_trains_the_supernet_once_and_fine_tunes_the_best(tmp_path, flat):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(8, 48), seed=0)
    search = kso.search.OneShotSearch(hypermodel, objective="val_accuracy", max_trials=6, fine_tune=2,
                                      max_params=3000, directory=tmp_path, project_name="one_shot", seed=1)
    fixed = {p.name for p in search.oracle.hyperparameters.space if p.__class__.__name__ == "Fixed"}
    assert "learning_rate" in fixed  # trials are not trained: the training settings are not searched
    # ... and a range is fixed at its middle on its scale: (1e-3, 1e-2), log-sampled, at 3.2e-3
    assert search.oracle.hyperparameters.values["learning_rate"] == pytest.approx(np.sqrt(1e-3 * 1e-2))
    search.search(*flat.train, validation_data=flat.validation, epochs=6, verbose=0)
    project = tmp_path / "one_shot"
    record = json.loads((project / "one_shot.json").read_text())
    assert record["supernet"]["epochs"] == 6 and (project / "supernet.npz").is_file()
    trials = list(search.oracle.trials.values())
    assert len(trials) == 6 and all(t.status == "COMPLETED" for t in trials)
    assert all(hypermodel.architecture(t.hyperparameters).count_params() <= 3000 for t in trials)  # the budget
    assert all(not (project / f"trial_{t.trial_id}" / "curves.json").exists() for t in trials)  # none trained
    tuned = [row for row in record["trials"] if row["fine_tuned"] is not None]
    assert len(tuned) == 2 and len(record["trials"]) == 6
    best = search.ranked_trials(1)[0]
    model = search.get_best_models(1)[0]
    assert best.trial_id in {row["trial"] for row in tuned}  # the best model is a fine-tuned one
    assert kso.architecture_of(model) == hypermodel.architecture(best.hyperparameters)
    # The best trial's objective is what its saved model scores; the supernet's score is kept beside it.
    score = evaluate(model, *flat.validation)["accuracy"]
    assert best.metrics.get_best_value("val_accuracy") == pytest.approx(score, abs=1e-6)
    assert best.metrics.exists("supernet_val_accuracy")
    assert score >= 0.85  # a 3,000-parameter MLP, six epochs of fine-tuning
    # A trial that was not fine-tuned was scored off the supernet without a Keras model: its weights, as
    # scored, are its read_off.npz, and the model loaded from them scores what the trial says.
    untuned = next(t for t in search._by_supernet() if t.trial_id not in {row["trial"] for row in tuned})
    folder = project / f"trial_{untuned.trial_id}"
    assert (folder / "read_off.npz").is_file() and not (folder / "checkpoint.weights.h5").exists()
    loaded = search.load_model(untuned)
    assert kso.architecture_of(loaded) == hypermodel.architecture(untuned.hyperparameters)
    read = evaluate(loaded, *flat.validation)
    assert untuned.metrics.get_best_value("val_accuracy") == pytest.approx(read["accuracy"], abs=1e-6)
    assert untuned.metrics.get_best_value("val_loss") == pytest.approx(read["loss"], rel=1e-4)
    # The fine-tuning is a race: both train one epoch (a tenth of six, at least one), the better one goes
    # on to the cosine schedule's end (every epoch: no early stopping; the schedule's test checks its rates).
    notes = {row["trial"]: read_note(project, row["trial"])["one_shot"] for row in tuned}
    assert notes[best.trial_id]["fine_tune_epochs"] == 6
    assert sorted(note["fine_tune_epochs"] for note in notes.values()) == [1, 6]
    assert {row["trial"]: row["fine_tune_epochs"] for row in tuned} == {
        trial: note["fine_tune_epochs"] for trial, note in notes.items()}  # one_shot.json says so too
    # A new search over the same project resumes: nothing is trained again.
    again = kso.search.OneShotSearch(hypermodel, objective="val_accuracy", max_trials=6, fine_tune=2,
                                     max_params=3000, directory=tmp_path, project_name="one_shot", seed=1)
    stamp = (project / "supernet.npz").stat().st_mtime_ns
    again.search(*flat.train, validation_data=flat.validation, epochs=6, verbose=0)
    assert (project / "supernet.npz").stat().st_mtime_ns == stamp
    assert json.loads((project / "one_shot.json").read_text())["trials"] == record["trials"]


def test_the_supernet_is_checkpointed_every_half_minute_and_after_its_last_epoch(tmp_path, flat, monkeypatch):
    from keras_structopt.search import _one_shot

    saves = []
    original = Supernet.save
    monkeypatch.setattr(Supernet, "save", lambda self, path: (saves.append(self.epochs_done), original(self, path)))
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(8, 16), seed=0)

    def search(epochs):
        tuner = kso.search.OneShotSearch(hypermodel, objective="val_accuracy", max_trials=1, fine_tune=1, pool=2,
                                         supernet_epochs=epochs, directory=tmp_path, project_name="p", seed=0)
        tuner.search(*flat.train, validation_data=flat.validation, epochs=1, verbose=0)
        return tuner

    search(3)  # three short epochs: written once, after the last
    assert saves == [3]
    monkeypatch.setattr(_one_shot, "CHECKPOINT_SECONDS", 0.0)  # every epoch where they take longer
    saves.clear()
    resumed = search(5)  # the same project: it goes on from epoch 3
    assert saves == [4, 5] and resumed.supernet.epochs_done == 5


def test_any_structural_oracle_proposes_the_sub_networks(tmp_path, flat):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(8, 32), seed=0)
    oracle = structural_oracle(keras_tuner.oracles.BayesianOptimizationOracle)(
        objective="val_loss", max_trials=4, num_initial_points=2, seed=1)
    search = kso.search.OneShotSearch(hypermodel, oracle=oracle, fine_tune=1, cost="params",
                                      directory=tmp_path, project_name="bayes")
    search.search(*flat.train, validation_split=0.2, epochs=2, verbose=0)
    assert type(search.oracle).__name__ == "StructuralBayesianOptimizationOracle"
    assert len(search.oracle.trials) == 4
    assert all(t.metrics.exists("params") for t in search.oracle.trials.values())  # the cost-aware score applies


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: kso.search.OneShotSearch(kso.TransformerHyperModel(input_shape=(8, 8), outputs=10),
                                            objective="val_accuracy", directory=d),
         r"Expected a HyperModel of the dense, conv, conv1d or recurrent family for a one-shot search"),
        (lambda d: kso.search.OneShotSearch(kso.DenseHyperModel(input_shape=(4,), outputs=3), objective="accuracy",
                                            directory=d),
         r"Expected a validation objective \(val_\.\.\.\).*Received: objective='accuracy'"),
        (lambda d: kso.search.OneShotSearch(kso.DenseHyperModel(input_shape=(4,), outputs=3), objective="val_loss",
                                            folds=3, directory=d),
         r"Expected no folds for a one-shot search"),
        (lambda d: kso.search.OneShotSearch(kso.DenseHyperModel(input_shape=(4,), outputs=3), objective="val_loss",
                                            fine_tune=0, directory=d),
         r"Expected fine_tune to be an int >= 1\. Received: fine_tune=0\."),
        (lambda d: kso.search.OneShotSearch(kso.DenseHyperModel(input_shape=(4,), outputs=3), objective="val_loss",
                                            fine_tune_schedule="linear", directory=d),
         r"Expected fine_tune_schedule to be one of \['cosine', 'constant'\]\. Received: fine_tune_schedule='linear'\."),
        (lambda d: kso.search.OneShotSearch(kso.DenseHyperModel(input_shape=(4,), outputs=3), objective="val_loss",
                                            race_epochs=-1, directory=d),
         r"Expected race_epochs to be None or an int >= 0\. Received: race_epochs=-1\."),
    ],
)
def test_bad_settings_fail_before_any_training(tmp_path, make, message):
    with pytest.raises(kso.ConfigurationError, match=message):
        make(tmp_path)


def _recording_rates():
    """A one-layer model compiled with SGD at 0.1, the rates its batches train at, and their recorder."""
    rates: list[float] = []
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: rates.append(float(model.optimizer.learning_rate)))
    return model, rates, record


COSINE_3_EPOCHS = [0.1 * 0.5 * (1 + np.cos(np.pi * step / 9)) for step in range(9)]  # 3 epochs of 3 batches


def test_the_cosine_schedule_anneals_a_rate_and_leaves_a_schedule_alone():
    x, y = np.zeros((12, 2), "float32"), np.zeros(12, "float32")
    model, rates, record = _recording_rates()
    model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[CosineLearningRate(3), record])
    np.testing.assert_allclose(rates, COSINE_3_EPOCHS, rtol=1e-5)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    rates.clear()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[CosineLearningRate(1), record])
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.025], rtol=1e-5)  # the optimizer's own schedule


def test_a_training_split_over_two_fits_follows_one_schedule_and_keeps_one_best_epoch():
    # The race's winner trains on from where the race stopped: the same cosine, the same best-epoch keeper.
    x, y = np.ones((12, 2), "float32"), np.ones(12, "float32")
    model, rates, record = _recording_rates()
    cosine, keep = CosineLearningRate(3), KeepBest("loss", "min", patience=3)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[cosine, keep, record])
    first = keep.best
    model.fit(x, y, initial_epoch=1, epochs=3, batch_size=4, verbose=0, callbacks=[cosine, keep, record])
    np.testing.assert_allclose(rates, COSINE_3_EPOCHS, rtol=1e-5)
    assert keep.epochs == 3 and keep.best_epoch == 2 and keep.best < first  # the loss fell every epoch
    best = [w.copy() for w in model.get_weights()]
    model.set_weights([np.zeros_like(w) for w in best])
    keep.restore()
    for restored, kept in zip(model.get_weights(), best):
        np.testing.assert_array_equal(restored, kept)
    # Patience counts across the fits: a loss that cannot fall stops the second one.
    flat = KeepBest("loss", "min", patience=1)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[flat])
    history = model.fit(x, y, initial_epoch=1, epochs=5, batch_size=4, verbose=0, callbacks=[flat])
    assert flat.stopped and history.epoch == [1] and flat.best_epoch == 0


def test_a_plateau_under_the_cosine_anneals_the_rest_of_it_over_the_tail_then_stops():
    # A loss that cannot fall (SGD's gradient is zero at the optimum): best at epoch 0, patience 2 runs
    # out at the end of epoch 2 (counted from 0); the rest of a 10-epoch cosine is annealed over 2 epochs.
    x, y = np.ones((12, 2), "float32"), np.zeros(12, "float32")
    model, rates, record = _recording_rates()
    model.layers[0].set_weights([np.zeros((2, 1), "float32"), np.zeros(1, "float32")])
    cosine = CosineLearningRate(10)
    keep = KeepBest("loss", "min", patience=2, anneal=cosine, tail=2)
    history = model.fit(x, y, epochs=10, batch_size=4, verbose=0, callbacks=[cosine, keep, record])
    assert history.epoch == [0, 1, 2, 3, 4] and keep.stopped and keep.ends == 5 and keep.best_epoch == 0
    on_schedule = [0.1 * 0.5 * (1 + np.cos(np.pi * step / 30)) for step in range(9)]
    np.testing.assert_allclose(rates[:9], on_schedule, rtol=1e-5)  # the first three epochs: the 10-epoch cosine
    done = 9 / 30  # where it stood; the next 6 batches go on from there to the end
    tail = [0.1 * 0.5 * (1 + np.cos(np.pi * (done + (1 - done) * i / 6))) for i in range(6)]
    np.testing.assert_allclose(rates[9:], tail, rtol=1e-5)
    assert rates[9] < rates[8] and rates[-1] < 0.01  # it goes on falling, and ends near zero
    # Without a cosine to anneal, the plateau stops the training at once, as early stopping does.
    model, rates, record = _recording_rates()
    model.layers[0].set_weights([np.zeros((2, 1), "float32"), np.zeros(1, "float32")])
    flat = KeepBest("loss", "min", patience=2)
    history = model.fit(x, y, epochs=10, batch_size=4, verbose=0, callbacks=[flat])
    assert history.epoch == [0, 1, 2] and flat.stopped


def test_data_a_supernet_cannot_train_on_is_refused_before_training(tmp_path):
    search = kso.search.OneShotSearch(kso.DenseHyperModel(input_shape=(4,), outputs=3), objective="val_loss",
                                      directory=tmp_path, project_name="data")
    x, y = np.zeros((20, 4), "float32"), np.arange(20) % 3
    with pytest.raises(kso.ConfigurationError, match=r"Expected validation_data=\(x, y\) or a validation_split"):
        search.search(x, y, epochs=1)
    with pytest.raises(kso.ConfigurationError, match=r"Expected x to be a NumPy array.*Received: _\w*Dataset"):
        search.search(tf.data.Dataset.from_tensor_slices((x, y)), validation_data=(x, y), epochs=1)
    assert not (tmp_path / "data" / "supernet.npz").exists()


@pytest.mark.slow
def test_the_supernet_ranks_sub_networks_as_fine_tuning_does(tmp_path, flat):
    # Twelve sub-networks scored off the supernet, every one of them then fine-tuned (no race): the two
    # rankings agree (Spearman's rho, recorded in one_shot.json, >= 0.6).
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 3), units=(4, 64),
                                     connection=["plain", "residual"], dropout=0.0, seed=0)
    search = kso.search.OneShotSearch(hypermodel, objective="val_loss", max_trials=12, fine_tune=12,
                                      fine_tune_epochs=20, race_epochs=0, supernet_epochs=30, supernet_batch_size=32,
                                      directory=tmp_path,
                                      project_name="ranking", seed=2)
    search.search(*flat.train, validation_data=flat.validation, epochs=5, verbose=0)
    record = json.loads((tmp_path / "ranking" / "one_shot.json").read_text())
    tuned = [row for row in record["trials"] if row["fine_tuned"] is not None]
    assert len(tuned) >= 10
    assert record["spearman"] >= 0.6, record


def test_the_supernets_adam_step_is_adams_arithmetic():
    from keras_structopt.search._supernet import _Adam

    rng = np.random.default_rng(0)
    start, gradients = rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(2, 3, 4)).astype("float32")
    variable, adam = tf.Variable(start), _Adam()
    slots = adam.slots("w", variable)
    expected, m, v = start.astype("float64"), 0.0, 0.0
    for step, gradient in enumerate(gradients, start=1):
        adam.update([variable], [slots], [tf.constant(gradient)], tf.constant(0.01))
        m, v = 0.9 * m + 0.1 * gradient, 0.999 * v + 0.001 * gradient**2
        rate = 0.01 * np.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        expected = expected - rate * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(variable.numpy(), expected, atol=1e-6)
    assert int(adam.iterations.numpy()) == 2


def test_the_supernet_traces_a_step_per_shape_without_a_retracing_warning(caplog):
    hypermodel = kso.DenseHyperModel(input_shape=(8,), outputs=3, num_layers=(1, 3), units=[4, 8], seed=0)
    x, y = np.random.default_rng(0).normal(size=(128, 8)).astype("float32"), np.arange(128) % 3
    supernet = Supernet(hypermodel, seed=0, pool=6)
    with caplog.at_level("WARNING", logger="tensorflow"):
        supernet.train(x, y, epochs=2, batch_size=16)
    assert len(supernet._steps) >= 6  # enough traced functions that tf.function would warn
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    assert supernet.epochs_done == 2


def test_equal_scores_are_told_apart_by_the_validation_loss():
    # Saturated accuracy ties: the epoch kept, the race's winner and the best trial are the ones with
    # the lower validation loss (a tie that improves nothing does not restart the patience).
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    keep = KeepBest("val_accuracy", "max", patience=2)
    keep.set_model(model)
    for epoch, (accuracy, loss) in enumerate([(0.9, 0.5), (1.0, 0.3), (1.0, 0.2), (1.0, 0.25), (0.9, 0.1)]):
        model.layers[0].kernel.assign(np.full((2, 1), float(epoch), "float32"))
        keep.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_loss": loss})
    assert (keep.best, keep.best_loss, keep.best_epoch) == (1.0, 0.2, 2)
    assert keep.stopped  # two epochs after the last strict improvement (epoch 1)
    keep.restore()
    assert float(model.layers[0].kernel.numpy()[0, 0]) == 2.0


def test_fine_tuned_trials_with_equal_scores_rank_by_validation_loss(tmp_path, flat):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=(8, 16), seed=0)
    search = kso.search.OneShotSearch(hypermodel, objective="val_accuracy", max_trials=3, fine_tune=3, pool=1,
                                      supernet_epochs=1, directory=tmp_path, project_name="ties", seed=0)
    search.search(*flat.train, validation_data=flat.validation, epochs=1, verbose=0)
    from keras_structopt.search._one_shot import rescore

    trials = sorted(search.oracle.trials.values(), key=lambda t: t.trial_id)
    for trial, loss in zip(trials, [0.4, 0.2, 0.3]):
        rescore(search.oracle, trial, {"val_accuracy": 0.95, "val_loss": loss})
    assert [t.trial_id for t in search.ranked_trials(3)] == [trials[1].trial_id, trials[2].trial_id, trials[0].trial_id]
