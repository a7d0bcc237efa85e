"""Ranking metrics of a recommender (hit rate and NDCG at k) as Keras Tuner objectives."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_structopt import _checks


def rank_of_positives(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """The 0-based rank of each row's positive candidate among its candidates (ties count against it).

    Example:
        >>> rank_of_positives(np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.7]]), np.array([2, 0]))
        array([1, 1])
    """
    chosen = scores[np.arange(len(scores)), positive][:, None]
    others = np.ones_like(scores, dtype=bool)
    others[np.arange(len(scores)), positive] = False
    return ((scores >= chosen) & others).sum(axis=1)


class RankingMetrics(keras.callbacks.Callback):
    """Adds `val_hit_rate_at_<k>` and `val_ndcg_at_<k>` to each epoch's logs (an objective then).

    For every held-out (user, item) pair the user liked, the model scores that item
    among `candidates` other items (the same for every pair: a fixed sample of the
    catalogue, seeded) with the user's own side features; the pair is a hit when the
    liked item ranks in the top `k`; NDCG adds `1 / log2(rank + 2)` for a hit. Use it
    as a search callback and `keras_tuner.Objective("val_ndcg_at_10", "max")`.

    Args:
        users: The held-out pairs' user-side columns (dict of arrays, one row per pair).
        items: Their item-side columns (the liked items).
        catalogue: Item-side columns of every item that may be recommended (one row
            per item; duplicates are removed).
        k: The cut-off.
        candidates: How many other items each pair is ranked against (all, if the
            catalogue is smaller).
        seed: Seeds the sample of candidates.
        inputs: A function turning a table into model inputs (a HyperModel's
            `inputs`); by default the columns are passed as they are.

    Example:
        >>> import numpy as np
        >>> metrics = RankingMetrics({"user_id": np.array(["u1"])}, {"movie_id": np.array(["m2"])},
        ...                          {"movie_id": np.array(["m1", "m2", "m3"])}, k=2)
        >>> metrics.names
        ('val_hit_rate_at_2', 'val_ndcg_at_2')
    """

    def __init__(self, users: Any, items: Any, catalogue: Any, *, k: int = 10, candidates: int = 99, seed: int = 0,
                 inputs: Any = None):
        super().__init__()
        self.k = _checks.positive_int("k", k)
        _checks.positive_int("candidates", candidates)
        self.inputs = inputs or (lambda table: table)
        self.users = {name: np.asarray(values) for name, values in users.items()}
        self.items = {name: np.asarray(values) for name, values in items.items()}
        if set(catalogue) != set(self.items):
            raise _checks.error(
                f"Expected catalogue to have the item columns {sorted(self.items)}. Received: {sorted(catalogue)}."
            )
        pairs = {len(v) for v in self.users.values()} | {len(v) for v in self.items.values()}
        if len(pairs) != 1:
            raise _checks.error(
                f"Expected users and items with one row per pair. Received: row counts {sorted(pairs)}."
            )
        names = sorted(catalogue)
        columns = [np.asarray(catalogue[n]).tolist() for n in names]
        rows = sorted(set(zip(*columns)))
        self.catalogue = {n: np.asarray([row[j] for row in rows], dtype=np.asarray(catalogue[n]).dtype)
                          for j, n in enumerate(names)}
        size = len(rows)
        rng = np.random.default_rng(seed)
        self.sample = rng.choice(size, min(candidates, size), replace=False)
        self.names = (f"val_hit_rate_at_{self.k}", f"val_ndcg_at_{self.k}")

    def evaluate(self, model) -> dict[str, float]:
        """Hit rate and NDCG at k of `model` on the held-out pairs."""
        count = len(next(iter(self.items.values())))
        width = len(self.sample) + 1
        table = {}
        for name, values in self.users.items():
            table[name] = np.repeat(values, width)
        for name, values in self.items.items():
            candidates = np.tile(self.catalogue[name][self.sample], (count, 1))
            table[name] = np.concatenate([values[:, None], candidates], axis=1).reshape(-1)
        scores = np.asarray(model.predict(self.inputs(table), batch_size=4096, verbose=0)).reshape(count, width)
        # a candidate that is the liked item itself is not a competitor
        same = np.ones((count, width - 1), dtype=bool)
        for name, values in self.items.items():
            same &= self.catalogue[name][self.sample][None, :] == values[:, None]
        scores[:, 1:][same] = -np.inf
        ranks = rank_of_positives(scores, np.zeros(count, dtype=int))
        hits = ranks < self.k
        ndcg = np.where(hits, 1.0 / np.log2(ranks + 2.0), 0.0)
        return {self.names[0]: float(hits.mean()), self.names[1]: float(ndcg.mean())}

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.evaluate(self.model))

