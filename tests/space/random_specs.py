"""Random valid Architectures of every family, for property tests."""

import random

from keras_structopt.space import Architecture, Block


def random_spec(rng: random.Random, family: str) -> Architecture:
    task = rng.choice(["multiclass", "binary", "regression"])
    outputs = 1 if task == "binary" else rng.randint(2, 6)
    depth = rng.randint(1, 3)
    if family == "dense":
        return Architecture(
            "dense",
            rng.choice([(rng.randint(1, 12),), (3, 4)]),
            [Block("dense", rng.randint(1, 24)) for _ in range(depth)],
            connection=rng.choice(["plain", "residual", "dense"]),
            task=task,
            outputs=outputs,
            options={
                "batch_norm": rng.random() < 0.5,
                "dropout": rng.choice([0.0, 0.3]),
                "activation": rng.choice(["relu", "gelu", "tanh"]),
            },
        )
    if family == "conv":
        stages = sorted(rng.randint(0, 2) for _ in range(depth))
        return Architecture(
            "conv",
            (rng.randint(4, 9), rng.randint(4, 9), rng.randint(1, 3)),
            [Block(rng.choice(["plain", "residual", "inception", "separable"]), rng.randint(4, 12), stage) for stage in stages],
            connection=rng.choice(["plain", "dense"]),
            task=task,
            outputs=outputs,
            options={
                "kernel_size": rng.choice([1, 3, 5]),
                "downsample": rng.choice(["max_pool", "avg_pool", "none"]),
                "pooling": rng.choice(["avg", "max"]),
                "dropout": rng.choice([0.0, 0.2]),
            },
        )
    if family == "tabular":
        features = [{"name": f"n{i}", "kind": "numeric", "mean": rng.uniform(-2, 2), "variance": rng.uniform(0.1, 4)}
                    for i in range(rng.randint(0, 3))]
        for i in range(rng.randint(0 if features else 1, 3)):
            if rng.random() < 0.5:
                vocabulary = [f"v{j}" for j in range(rng.randint(1, 6))]
                features.append({"name": f"s{i}", "kind": "string", "vocabulary": vocabulary})
            else:
                features.append({"name": f"i{i}", "kind": "integer", "vocabulary": rng.sample(range(100), rng.randint(1, 6))})
        categorical = [f for f in features if f["kind"] != "numeric"]
        return Architecture(
            "tabular",
            (len(features),),
            [Block("dense", rng.randint(1, 24)) for _ in range(depth)],
            connection=rng.choice(["plain", "residual", "dense", "cross"]),
            task=task,
            outputs=outputs,
            options={
                "features": features,
                "embedding_units": [rng.randint(1, 5) for _ in categorical],
                "cross_layers": rng.randint(1, 3),
                "batch_norm": rng.random() < 0.5,
                "dropout": rng.choice([0.0, 0.2]),
            },
        )
    tokens = rng.random() < 0.5
    vocabulary = rng.randint(3, 20) if tokens else None
    shape = (rng.randint(2, 7),) if tokens else (rng.randint(2, 7), rng.randint(1, 5))
    if family == "recurrent":
        return Architecture(
            "recurrent",
            shape,
            [Block(rng.choice(["lstm", "gru"]), rng.randint(1, 10)) for _ in range(depth)],
            connection=rng.choice(["plain", "residual"]),
            task=task,
            outputs=outputs,
            options={
                "bidirectional": rng.random() < 0.5,
                "reduce": rng.choice(["last", "mean", "max"]),
                "vocabulary_size": vocabulary,
                "embedding_units": rng.randint(1, 8),
                "dropout": rng.choice([0.0, 0.1]),
            },
        )
    return Architecture(
        "transformer",
        shape,
        [Block("encoder", rng.randint(1, 24)) for _ in range(depth)],
        connection=rng.choice(["residual", "dense"]),
        task=task,
        outputs=outputs,
        options={
            "model_units": rng.randint(2, 16),
            "num_heads": rng.randint(1, 3),
            "key_units": rng.randint(1, 8),
            "normalization": rng.choice(["pre", "post"]),
            "position_embedding": rng.random() < 0.5,
            "pooling": rng.choice(["mean", "max"]),
            "vocabulary_size": vocabulary,
            "dropout": rng.choice([0.0, 0.1]),
        },
    )
