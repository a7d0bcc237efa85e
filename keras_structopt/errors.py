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

__all__ = ["ConfigurationError", "NoSpaceError", "SearchFailedError", "UnsupportedModelError"]

try:  # Keras Tuner is a dependency, but space/ must stay importable without it.
    from keras_tuner.errors import FatalError as _FatalError
    from keras_tuner.errors import FatalValueError as _FatalValueError
except ImportError:  # pragma: no cover - exercised only without keras-tuner
    _FatalError, _FatalValueError = Exception, ValueError


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


class NoSpaceError(OSError, _FatalError):
    """A full disk: an `OSError` with `errno.ENOSPC`, and a Keras Tuner `FatalError`.

    Its message names the file that could not be written, the bytes it needed and the bytes
    free. Fatal, because a trial that could not write its files has not failed: Keras Tuner
    would record it FAILED and never run it again, so a resumed search would lose it.
    Raised, the search stops with the trial unfinished; once space is freed, the same search
    (or `keras-structopt run --resume`) runs it.

    Example:
        >>> import errno, keras_tuner
        >>> from keras_structopt.errors import NoSpaceError
        >>> error = NoSpaceError(errno.ENOSPC, "No space left")
        >>> error.errno == errno.ENOSPC, isinstance(error, keras_tuner.errors.FatalError)
        (True, True)
    """


class SearchFailedError(RuntimeError):
    """A search ended without one completed trial; the message gives the first failure's reason.

    Example:
        >>> from keras_structopt.errors import SearchFailedError
        >>> issubclass(SearchFailedError, RuntimeError)
        True
    """
