"""Reading runs: one row per run folder, each read once through its records (metrics,
test result, flags, config settings)."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

from animalcnn.errors import RunFolderError
from animalcnn.run_folder import RunFolder, TestResult
from animalcnn.run_folder.flags import Flag, flags, gap_to_test

COMPARE_COLUMNS = [
    "run",
    "name",
    "tags",
    "notes",
    "arch",
    "strategy",
    "status",
    "flags",
    "backend",
    "precision",
    "params_total",
    "params_trainable",
    "epochs",
    "best_epoch",
    "best_val_accuracy",
    "train_accuracy",
    "test_accuracy",
    "gap",
    "test_data",
    "tta",
    "time_s",
    "images_per_s",
    "device",
]


def run_row(path: Path) -> dict[str, Any]:
    """One comparison row; a folder that is not a readable run gets a row saying why.

    The test accuracy is the run's own test split's, shown only while it belongs to the
    run's current best checkpoint: an evaluation of an earlier best (a run evaluated,
    then resumed) is `stale`."""
    row: dict[str, Any] = dict.fromkeys(COMPARE_COLUMNS) | {
        "run": path.name,
        "label": path.name,
        "best": False,
        "settings": {},
        "config": None,  # the config as read, for queries on keys deeper than a setting
        "test_result": TestResult(state="none"),
    }  # every key of every row, so that no reader guesses which are there
    try:
        run = RunFolder.open(path)
        m = run.metrics()
        status = run.status()
        test = run.test_result(m)
    except RunFolderError as exc:
        row["status"] = f"damaged: {str(exc).split(': ', 1)[-1]}"
        return row
    with suppress(RunFolderError):  # a config this version cannot read: no settings
        row["config"] = run.config().model_dump(mode="json")
        row["settings"] = settings(row["config"])
    best = m.best
    row.update(
        name=m.name,
        tags=", ".join(m.tags) or None,
        notes=m.notes,
        arch=m.arch,
        strategy=m.strategy,
        status=status,
        precision=m.precision,
        backend=m.backend,
        device=m.device,
        params_total=m.params.total,
        params_trainable=m.params.trainable,
        epochs=m.epochs_run,
        best_epoch=m.best_epoch,
        best_val_accuracy=best.val_accuracy if best else None,
        train_accuracy=best.accuracy if best else None,
        time_s=m.wall_time_s,
        images_per_s=m.images_per_second,
        test_result=test,
        test_data=test.text(),
    )
    if test.evaluation is not None:
        row["test_accuracy"] = test.evaluation.accuracy
        row["tta"] = test.evaluation.tta
        row["gap"] = gap_to_test(m, test)
    row["flags"] = flags(run, m, test, status)
    return row


NOT_SETTINGS = ("name", "tags", "notes", "output", "data.cache", "data.cache_dir")


def setting_text(value: Any) -> str:
    """A config value as short text: `0.001`, `on`, `flip(horizontal), zoom(0.2)`,
    `decay=0.99`; `-` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(setting_text(v) for v in value) or "none"
    if isinstance(value, dict):
        if "type" in value:  # an augmentation: its type and its options' values
            options = [setting_text(v) for k, v in value.items() if k != "type"]
            return f"{value['type']}({', '.join(options)})" if options else str(value["type"])
        return ", ".join(f"{k}={setting_text(v)}" for k, v in value.items()) or "-"
    return str(value)


def settings(config: dict[str, Any]) -> dict[str, str]:
    """A run's config as `{dotted key: short text}`, one key per option of each section
    (`training.learning_rate`, `model.augmentation`); what names the run or says where
    its files go is not a setting."""
    flat: dict[str, str] = {}
    for section, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{section}.{k}": setting_text(v) for k, v in value.items()})
        else:
            flat[section] = setting_text(value)
    return {
        k: v
        for k, v in flat.items()
        if k not in NOT_SETTINGS and k.split(".")[0] not in NOT_SETTINGS
    }


def differing(rows: list[dict[str, Any]]) -> list[str]:
    """The settings that differ between the readable runs among `rows`, in config order."""
    readable = [r["settings"] for r in rows if r["settings"]]
    if len(readable) < 2:
        return []
    keys = list(dict.fromkeys(k for s in readable for k in s))
    return [k for k in keys if len({s.get(k, "-") for s in readable}) > 1]


def value_of(row: dict[str, Any], key: str) -> Any:
    """A row's column, or its setting for a dotted config key (as a number where it is one)."""
    if key in row:
        return row[key]
    text = row["settings"].get(key)
    for number in (int, float):
        try:
            return number(text) if text not in (None, "-") else None
        except ValueError:
            continue
    return text


def collect(paths: list[Path]) -> list[dict[str, Any]]:
    """One row per folder; `label` is the run's name, or its folder name where names repeat."""
    rows = [run_row(p) for p in paths]
    names = [r["name"] or r["run"] for r in rows]
    for row, name in zip(rows, names, strict=True):
        row["label"] = name if names.count(name) == 1 else row["run"]
    return rows


def flag_text(found: list[Flag] | None) -> str | None:
    """Flags as written to CSV and the report: "name (reason); ..."."""
    return "; ".join(str(f) for f in found) if found else None


def resume_hints(rows: list[dict[str, Any]], folders: list[Path]) -> list[str]:
    """For each stopped or interrupted run that can be resumed, the command to resume it."""
    return [
        f"{row['run']}: {row['status']}; continue with: animalcnn train --resume {folder}"
        for row, folder in zip(rows, folders, strict=True)
        if row["status"] in ("stopped", "interrupted") and RunFolder(folder).resumable()
    ]
