"""The public line: the documented names are exactly `__all__`, each one documented with an example
and annotated, and the README, the docs and the notebooks use nothing else."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The documented public names of each public module (the API reference lists these).
PUBLIC = {
    "keras_structopt": [
        "Architecture", "Block", "ConfigurationError", "Conv1DHyperModel", "ConvHyperModel", "DenseHyperModel",
        "RecommenderHyperModel",
        "RecurrentHyperModel", "SearchFailedError", "Suggestion", "TabularHyperModel", "TransformerHyperModel",
        "UnsupportedModelError", "__version__", "architecture_of", "compress", "count", "export_saved_model",
        "export_tflite", "render", "search", "slim", "suggest", "to_tf_keras",
    ],
    "keras_structopt.search": [
        "EvolutionOracle", "EvolutionarySearch", "LaunchResult", "MedianStopping", "OneShotSearch", "OptunaOracle",
        "OptunaSearch",
        "Project", "RankingMetrics", "RaySearch", "Selection", "StructuralOracle", "StructuralTuner",
        "inherit_weights", "launch", "learning_curves", "pareto_front", "plot_learning_curves", "plot_pareto",
        "ray_search", "rejected_candidates", "select_simplest", "structural_oracle", "tuner", "warm_start",
        "write_hparams", "write_search_report",
    ],
    "keras_structopt.compress": [
        "PRESETS", "Cluster", "CompressionReport", "CompressionResult", "ConstantSparsity", "FineTuning",
        "LayerTreatment", "PolynomialDecay", "Prune", "Quantize", "Recipe", "Slim", "SlimPlan", "StageReport",
        "compress", "slim",
    ],
    "keras_structopt.export": [
        "TFLiteRunner", "export_saved_model", "export_tflite", "isolated_conversion", "tensor_types", "tflite_predict",
        "tflite_vocabularies", "to_tflite_bytes", "towers",
    ],
    "keras_structopt.data": ["DIGITS_VIEWS", "Split", "TabularSchema", "load_digits_split", "load_movielens",
                             "load_tfds"],
    "keras_structopt.testing": ["CheckReport", "check_hypermodel"],
    "keras_structopt.space": ["Architecture", "Block", "Counts", "Family", "Field", "count", "family",
                              "family_defaults", "family_names", "receptive_field", "register_family", "render"],
    "keras_structopt.bridge": ["SUPPORTED_LAYERS", "Registration", "architecture_of", "carry_back", "register",
                               "to_tf_keras", "unsupported_layers"],
    "keras_structopt.hypermodels": [
        "Conv1DHyperModel", "ConvHyperModel", "DenseHyperModel", "RecommenderHyperModel", "RecurrentHyperModel", "StructuralHyperModel",
        "TabularHyperModel", "TransformerHyperModel", "Tunable", "declare_per_block", "hypermodel_class",
    ],
    "keras_structopt.errors": ["ConfigurationError", "NoSpaceError", "SearchFailedError", "UnsupportedModelError"],
}


def _public(module_name: str):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        yield name, getattr(module, name)


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_the_public_names_are_the_documented_ones(module_name):
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    assert all(hasattr(module, name) for name in module.__all__)


def test_every_module_of_the_package_is_public_or_private():
    for path in sorted((ROOT / "keras_structopt").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if any(part.startswith("_") for part in parts[1:]):
            continue  # private (`_name`), or inside a private module
        assert name in PUBLIC, f"{name} is neither private nor documented"


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_class_and_function_has_an_example(module_name):
    missing = [name for name, obj in _public(module_name)
               if (inspect.isclass(obj) or inspect.isfunction(obj)) and "Example" not in (inspect.getdoc(obj) or "")]
    assert missing == []


def _unannotated(obj) -> list[str]:
    function = obj.__init__ if inspect.isclass(obj) else obj
    if not getattr(function, "__module__", "").startswith("keras_structopt"):
        return []  # inherited from Keras Tuner or Keras
    signature = inspect.signature(function)
    missing = [name for name, parameter in signature.parameters.items()
               if name not in ("self", "cls") and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
               and parameter.annotation is inspect.Parameter.empty]
    if inspect.isfunction(obj) and signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_signature_is_annotated(module_name):
    missing = {name: found for name, obj in _public(module_name)
               if (inspect.isclass(obj) or inspect.isfunction(obj)) and (found := _unannotated(obj))}
    assert missing == {}


def _code_of_readme_and_notebooks() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    texts = [(str(page.relative_to(ROOT)), block) for page in pages
             for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        texts += [(path.name, "".join(cell["source"])) for cell in cells if cell["cell_type"] == "code"]
    return texts


def test_the_readme_the_docs_and_the_notebooks_use_only_public_names():
    problems = []
    for where, code in _code_of_readme_and_notebooks():
        for module_name, names in re.findall(r"from (keras_structopt[\w.]*) import ([^\n]+)", code):
            if module_name not in PUBLIC:
                problems.append(f"{where}: imports the private {module_name}")
                continue
            for name in (n.strip(" ()") for n in names.split("#")[0].split(",")):
                if name and name not in PUBLIC[module_name]:
                    problems.append(f"{where}: {module_name}.{name} is not public")
        for package, name in re.findall(r"\bkso\.(\w+)\.(\w+)", code):
            module_name = f"keras_structopt.{package}"
            if module_name in PUBLIC and name not in PUBLIC[module_name]:
                problems.append(f"{where}: kso.{package}.{name} is not public")
        for name in re.findall(r"\bkso\.(\w+)\b(?!\.)", code):
            if name not in PUBLIC["keras_structopt"] and f"keras_structopt.{name}" not in PUBLIC:
                problems.append(f"{where}: kso.{name} is not public")
    assert problems == []
