"""The string options of the public API, as `typing.Literal` types (checked by mypy; the
functions still check every value at run time and name the accepted ones)."""

from typing import Literal

Task = Literal["multiclass", "binary", "regression"]
Target = Literal["mobile", "cpu", "gpu", "tpu"]
Schedule = Literal["polynomial", "constant"]
Quantization = Literal["none", "dynamic", "float16", "int8", "qat"]  # compress: conversions and QAT
TFLiteQuantization = Literal["none", "dynamic", "float16", "int8"]  # a TFLite conversion
Cost = Literal["params", "macs"]
Refit = Literal["all", "best_fold"]
SelectionRule = Literal["one_se", "best"]
DigitsView = Literal["flat", "image", "rows", "tokens"]
