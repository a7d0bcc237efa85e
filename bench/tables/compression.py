"""Benchmark tables: compression (see bench/tables/_base.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._base import load, markdown, table

TOLERANCE = 1.0  # points of test accuracy: what "best within 1 pt" allows

# The rows of the compression table, in order: (label, the methods the row is chosen from). A label
# with one row in the JSON shows it; with several, the smallest file within TOLERANCE.
COMPRESS_ROWS = (
    ("TFMOT recipe", ("tfmot recipe",)),
    ("TFMOT tuned best within 1 pt", ("tfmot recipe", "tfmot swept")),
    ("slim only", ("slim only",)),
    ("preset mobile", ("preset mobile",)),
    ("preset cpu", ("preset cpu",)),
    ("guarded mobile", ("guarded mobile",)),
    ("guarded cpu", ("guarded cpu",)),
)


def signed(value: float) -> str:
    """`value` to two decimals with its sign, a true minus (U+2212) when negative, `+0.00` for zero."""
    return f"{round(value, 2) + 0.0:+.2f}".replace("-", "\u2212")


def short_settings(settings: str) -> str:
    """A compress row's settings as the docs write them: a preset as `slim 0.5 → 0.8 → 16 → int8`."""
    parts = [part.split(" (")[0] for part in settings.split(", ") if part not in ("fine-tuned", "stripped")]
    if parts[0].startswith("slim ") and len(parts) > 2:
        return " → ".join([parts[0]] + [p.removeprefix("sparsity ").removesuffix(" clusters") for p in parts[1:]])
    return ", ".join(parts).removesuffix(", dynamic")


def percent_setting(setting: str) -> str:
    """A size-floor setting `0.9/4` (sparsity/clusters) as `90 % / 4`."""
    sparsity, clusters = setting.split("/")
    return f"{round(100 * float(sparsity))} % / {clusters}"


def families_table(results: list[dict[str, Any]]) -> str:
    """The families table of `bench/families.py`'s result rows (the script prints it as it measures)."""
    rows = [[r["case"], f"{r['trials_completed']}/{r['trials']}", f"{r['best_val_accuracy']:.4f}",
             f"{r['test_accuracy']:.4f}", f"{r['params']:,}", f"{r['macs']:,}", f"{r['search_seconds']:.0f}",
             f"{r['compressed_test_accuracy']:.4f}", f"{r['accuracy_loss_points']:+.2f}",
             f"{r['compressed_tflite_gzip_bytes']:,} B", f"{r['size_ratio']:.1f}x"]
            for r in results]
    header = ["case", "trials", "val acc", "test acc", "params", "MACs", "search s", "compressed acc", "loss (pts)",
              "gzip'd TFLite", "smaller"]
    return markdown(header, rows, "lrrrrrrrrrr")


@table("families")
def families(results: Path) -> str:
    """Every family on digits: the searched winner and `compress` with its defaults (bench/families.py)."""
    return families_table(load(results, "families.json")["results"])


def chosen(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> dict[str, Any] | None:
    """The one row of `methods`, or of several the smallest file within TOLERANCE points (None if none)."""
    candidates = [r for r in rows if r["method"] in methods]
    if len(candidates) == 1:
        return candidates[0]
    return max((r for r in candidates if r["loss_points"] <= TOLERANCE), key=lambda r: r["smaller"], default=None)


@table("compress")
def compress(results: Path) -> str:
    """Compression against TFMOT on the dense and conv winners (bench/compress.py)."""
    everything = load(results, "compress.json")["rows"]
    rows = []
    for case in dict.fromkeys(r["case"] for r in everything):
        case_rows = [r for r in everything if r["case"] == case]
        winner = f"{case} ({case_rows[0]['report']['stages'][0]['params']:,})"  # the first row names its size
        for label, methods in COMPRESS_ROWS:
            r = chosen(case_rows, methods)
            if r is None:
                continue
            latency = r["latency_ratio"].get("tflite_256")
            rows.append([winner, label, short_settings(r["settings"]),
                         f"{r['test_accuracy']:.4f} ({signed(r['loss_points'])})",
                         f"{r['params']:,}", f"{r['smaller']:.1f}×", "—" if latency is None else f"{latency:.2f}"])
            winner = case
    header = ["winner", "method", "settings", "test acc (loss, pts)", "params", "smaller", "TFLite latency b256"]
    return markdown(header, rows, "lllrrrr")


@table("latency_floor")
def latency_floor(results: Path) -> str:
    """Latency of the slimmed winners and of the head-only floor, as ratios to the winner (bench/latency_floor.py)."""
    columns = {"tf_1": "TF b1", "tf_256": "TF b256", "tflite_1": "TFLite b1", "tflite_256": "TFLite b256"}

    def cell(row: dict[str, Any], key: str) -> str:
        """A ratio; bold where the floor keeps at least half of the winner's batch-256 time (slimming cannot help)."""
        text = f"{row['ratio'][key]:.2f}×"
        bound = row["model"].startswith("floor") and key.endswith("_256") and row["ratio"][key] >= 0.5
        return f"**{text}**" if bound else text

    rows = [[r["case"], r["model"], f"{r['params']:,}", *(cell(r, key) for key in columns)]
            for r in load(results, "latency_floor.json")["rows"] if r["model"] != "winner"]
    return markdown(["winner", "model", "params", *columns.values()], rows, "llrrrrr")


@table("eager_fit")
def eager_fit(results: Path) -> str:
    """One pruning stage's fit, traced or eager, by its steps (bench/eager_fit.py)."""
    rows = [[r["model"], f"{r['params']:,}", str(r["steps"]), f"{r['seconds']['traced']:.2f}",
             f"{r['seconds']['eager']:.2f}", f"{r['eager_over_traced']:.2f}×"]
            for r in load(results, "eager_fit.json")["rows"]]
    return markdown(["model", "params", "steps", "traced (s)", "eager (s)", "eager / traced"], rows, "lrrrrr")


@table("size_floor")
def size_floor(results: Path) -> str:
    """The dense winner's widths: accuracy from scratch and the smallest int8 file (bench/size_floor.py)."""
    data = load(results, "size_floor.json")
    shown = []
    for r in data["rows"]:  # down to the first width that loses more than TOLERANCE on validation
        shown.append(r)
        if r["loss_points"]["validation"] > TOLERANCE:
            break
    sparsity, clusters = percent_setting(shown[0]["smallest"]["setting"]).split(" / ")
    if any(r["smallest"]["setting"] != shown[0]["smallest"]["setting"] for r in shown):
        raise ValueError("the rows' smallest files have different settings; the header names one")

    def reaching(settings: list[str]) -> str:
        """The settings that reach the goal: none, up to three by name, or how many."""
        if len(settings) > 3:
            return f"{len(settings)} settings"
        return ", ".join(map(percent_setting, settings)) or "none"

    rows = [[r["width"], f"{r['params']:,}", f"{r['accuracy']['validation']:.4f}", f"{r['accuracy']['test']:.4f}",
             "—" if r is shown[0] else f"{signed(r['loss_points']['validation'])} / {signed(r['loss_points']['test'])}",
             f"{r['smallest']['gzip_bytes']:,} B ({r['smallest']['smaller']:.1f}×)",
             reaching(r["settings_reaching_goal"])] for r in shown]
    header = ["width", "params", "val acc", "test acc", "loss (val / test pts)",
              f"smallest file ({sparsity}, {clusters} values)", f"settings at ≥ {data['goal']:.0f}×"]
    return markdown(header, rows, "rrrrrrl")


def models_table(rows: list[dict[str, Any]]) -> str:
    """The table of `bench/models.py`'s rows: every `keras.applications` constructor through the bridge,
    `slim`, `compress` and both exports (a stage that failed shows its reason), and a last row that
    counts what each stage achieved and sums the seconds."""
    body = []
    for row in rows:
        if "error" in row:
            body.append([row["model"], "", "", "", "", row["error"], ""])
            continue
        bridge = f"{row['bridge_max_difference']:.1e}" if "bridge_max_difference" in row else row.get("bridge", "")
        slim = (f"{row['slim_ratio']:.2f}x fewer ({row['slim_params']:,})" if row.get("slim_layers_narrowed")
                else row.get("slim", ""))
        compress = f"{row['compress_size_ratio']:.1f}x" if "compress_size_ratio" in row else row.get("compress", "")
        export = "ok" if row.get("export_ok") else row.get("export", "no")
        body.append([row["model"], f"{row['params']:,}", bridge, slim, compress, export, f"{row['seconds']:.0f}"])
    if len(rows) > 1:
        count = len(rows)
        body.append([f"**{count} models**", "", f"{sum('bridge_max_difference' in r for r in rows)} bridged",
                     f"{sum(bool(r.get('slim_layers_narrowed')) for r in rows)} slimmed",
                     f"{sum('compress_size_ratio' in r for r in rows)} compressed",
                     f"{sum(bool(r.get('export_ok')) for r in rows)} exported",
                     f"{sum(r['seconds'] for r in rows):,.0f}"])
    header = ["model", "params", "bridge max Δ", "slim (0.5)", "compress (gzip ratio)", "export", "seconds"]
    return markdown(header, body, "lrrlllr")


@table("models")
def models(results: Path) -> str:
    """Every `keras.applications` constructor: bridge, slim, compress, export (bench/models.py)."""
    return models_table(load(results, "models.json")["rows"])
