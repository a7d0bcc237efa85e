"""Exception types raised by keras-structopt.

Configuration errors subclass Keras Tuner's fatal error types, so that when one is
raised inside a trial Keras Tuner stops the search and shows it instead of recording
a failed trial.

Example:
    >>> from keras_structopt.errors import ConfigurationError
    >>> issubclass(ConfigurationError, ValueError)
    True
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "SearchFailedError", "UnsupportedModelError"]

try:  # Keras Tuner is a dependency, but space/ must stay importable without it.
    from keras_tuner.errors import FatalValueError as _FatalValueError
except ImportError:  # pragma: no cover - exercised only without keras-tuner
    _FatalValueError = ValueError


class ConfigurationError(_FatalValueError):
    """A search space, architecture or argument is not valid.

    It is a `ValueError` (and a Keras Tuner `FatalValueError`), so Keras Tuner does
    not swallow it as a failed trial.

    Example:
        >>> import keras_structopt as kso
        >>> try:
        ...     kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=0)
        ... except kso.ConfigurationError as error:
        ...     print(str(error).split(".")[0])
        Expected num_layers to be an int >= 1, a list of them, or a (min, max) range
    """


class UnsupportedModelError(ValueError):
    """A model holds layers that the Keras 3 -> tf_keras bridge cannot carry.

    Example:
        >>> from keras_structopt.errors import UnsupportedModelError
        >>> issubclass(UnsupportedModelError, ValueError)
        True
    """


class SearchFailedError(RuntimeError):
    """A search ended without one completed trial; the message gives the first failure's reason.

    Example:
        >>> from keras_structopt.errors import SearchFailedError
        >>> issubclass(SearchFailedError, RuntimeError)
        True
    """
