"""Selection logic on made-up records and curves: fast, no training."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_structopt.errors import ConfigurationError
from keras_structopt.search._select import Record, non_dominated, simplest_within

records_strategy = st.lists(
    st.builds(
        Record,
        trial=st.uuids().map(str),
        value=st.floats(0.0, 1.0, allow_nan=False),
        standard_error=st.floats(0.0, 0.1, allow_nan=False),
        params=st.integers(1, 10**6),
        macs=st.integers(1, 10**7),
    ),
    min_size=1,
    max_size=25,
    unique_by=lambda r: r.trial,
)


def _best(records, higher=True):
    sign = 1 if higher else -1
    return max(records, key=lambda r: (sign * r.value, -r.params))


@settings(max_examples=300, deadline=None)
@given(records_strategy, st.booleans(), st.sampled_from(["params", "macs"]))
def test_simplest_is_never_costlier_than_the_best_and_within_its_error(records, higher, cost):
    choice, threshold = simplest_within(records, cost=cost, higher_is_better=higher)
    sign = 1 if higher else -1
    best = max(records, key=lambda r: (sign * r.value, -r.cost(cost)))
    assert choice.cost(cost) <= best.cost(cost)
    assert sign * choice.value >= sign * (best.value - sign * best.standard_error) - 1e-9
    assert math.isclose(threshold, best.value - sign * best.standard_error)
    # Nothing cheaper was eligible.
    for r in records:
        if r.cost(cost) < choice.cost(cost):
            assert sign * r.value < sign * threshold - 1e-12


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.floats(0, 1, allow_nan=False), st.integers(1, 10**5)),
                min_size=1, max_size=30, unique_by=lambda p: p[0]), st.booleans())
def test_pareto_front_holds_exactly_the_non_dominated_points(points, higher):
    front = non_dominated(points, higher_is_better=higher)
    sign = 1 if higher else -1

    def dominates(a, b):
        return sign * a[1] >= sign * b[1] and a[2] <= b[2] and (sign * a[1] > sign * b[1] or a[2] < b[2])

    by_key = {p[0]: p for p in points}
    assert front, "a non-empty set always has a non-dominated point"
    for key in front:
        assert not any(dominates(other, by_key[key]) for other in points if other[0] != key)
    for point in points:
        if point[0] not in front:
            assert any(dominates(other, point) for other in points if other[0] != point[0])
    costs = [by_key[k][2] for k in front]
    assert costs == sorted(costs)


def test_one_standard_error_rule_on_made_up_depths():
    # Made-up validation accuracies of depth 1..4 on 400 validation examples: the deeper
    # nets are better by less than the binomial noise, so the rule takes the shallowest
    # net inside the band; "best" takes the deepest.
    n = 400
    accuracies = {1: 0.930, 2: 0.962, 3: 0.968, 4: 0.970}
    params = {1: 1_000, 2: 3_000, 3: 6_000, 4: 10_000}
    records = [
        Record(str(d), a, math.sqrt(a * (1 - a) / n), params[d], params[d]) for d, a in accuracies.items()
    ]
    choice, threshold = simplest_within(records)
    assert choice.trial == "2"
    assert threshold == pytest.approx(0.970 - math.sqrt(0.97 * 0.03 / n))
    best, _ = simplest_within(records, rule="best")
    assert best.trial == "4"
    # With a lower-is-better metric (loss) the band lies above the best value.
    losses = [Record("a", 0.10, 0.02, 9000, 1), Record("b", 0.115, 0.02, 2000, 1), Record("c", 0.2, 0.02, 10, 1)]
    choice, threshold = simplest_within(losses, higher_is_better=False)
    assert (choice.trial, threshold) == ("b", pytest.approx(0.12))


def test_ties_and_empty_input():
    same = [Record("big", 0.9, 0.0, 500, 1), Record("small", 0.9, 0.0, 100, 1)]
    assert simplest_within(same)[0].trial == "small"
    assert simplest_within(same, rule="best")[0].trial == "small"  # equal value: the cheaper is "best"
    with pytest.raises(ConfigurationError, match="at least one completed trial"):
        simplest_within([])
    assert non_dominated([("a", 0.9, 10), ("b", 0.9, 10)]) == ["a", "b"]  # equal points dominate neither
