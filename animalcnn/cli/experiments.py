"""Commands about experiments: train, summary, config, models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from animalcnn.cli.app import Overrides, command, examples

Config = Annotated[Path, typer.Argument(metavar="CONFIG", help="An experiment's YAML file.")]


@command(
    epilog=examples(
        "animalcnn train configs/mid.yaml --set training.epochs=5",
        "animalcnn train configs/simple.yaml configs/mid.yaml --runs-dir runs",
        "animalcnn train --resume runs/mid-20261129-101500",
    )
)
def train(
    configs: Annotated[
        list[Path] | None,
        typer.Argument(metavar="CONFIG", help="Config files, trained in turn."),
    ] = None,
    overrides: Overrides = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Where run folders go (default: output.runs_dir)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            metavar="RUN", help="Continue a stopped run folder from its last completed epoch."
        ),
    ] = None,
) -> None:
    """Train each config into a new run folder; a failed one does not stop the rest."""
    from animalcnn.errors import UserError
    from animalcnn.training import runner

    if resume is not None:
        if configs or overrides or runs_dir:
            raise UserError("--resume takes a run folder alone: its config is in the folder")
        code = runner.resume_one(resume)
    elif not configs:
        raise UserError("train: give one or more config files, or --resume RUN")
    else:
        code = runner.train_all(configs, overrides or [], runs_dir)
    if code:
        raise typer.Exit(code)


@command(
    epilog=examples(
        "animalcnn summary configs/resnet.yaml",
        "animalcnn summary configs/xception_partial.yaml --set transfer.weights=none --json",
    )
)
def summary(
    config: Config,
    overrides: Overrides = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
    classes: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=2,
            help="Number of classes (default: class folders in data.dir, else 5).",
        ),
    ] = None,
) -> None:
    """Build the model and show its layers and parameter counts (no training, no data)."""
    from animalcnn import backends
    from animalcnn.console import console
    from animalcnn.data.discovery import class_count
    from animalcnn.models.configs import load_config

    cfg = load_config(config, overrides)
    classes = classes or class_count(cfg.data, default=5)
    backends.start(cfg.training.backend)
    from animalcnn.training.phases import describe

    counts, table = describe(cfg, classes)
    if as_json:
        print(json.dumps({**counts, "arch": cfg.model.arch, "classes": classes}))
        return
    console.print(table, highlight=False, markup=False, end="", soft_wrap=True)  # as rendered


@command(
    name="lr-find",
    epilog=examples(
        "animalcnn lr-find configs/mid.yaml",
        "animalcnn lr-find configs/resnet.yaml --set data.img_size=64 --out lr",
    ),
)
def lr_find(
    config: Config,
    overrides: Overrides = None,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Where lr_find.png and lr_find.csv go.")
    ] = Path("."),
) -> None:
    """Find a learning rate: train briefly while it grows, and suggest three as fastai does
    (valley, steepest fall, minimum/10). Creates no run folder."""
    from animalcnn import backends
    from animalcnn.console import console
    from animalcnn.data.discovery import check_data_dir
    from animalcnn.models.configs import load_config

    cfg = load_config(config, overrides)
    check_data_dir(cfg.data, config)
    backends.start(cfg.training.backend)
    from animalcnn.training import lr_finder

    lr_finder.check_targets(out)
    result = lr_finder.range_test(cfg)
    written = lr_finder.write(result, out, cfg.name)
    console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False, markup=False)
    for name, rate in result.suggestions.items():
        console.print(f"{name:>10}: {rate:.2e}  ({lr_finder.RULES[name]})", highlight=False)
    console.print(
        f"suggested learning rate: {result.suggestion:.2e} (valley, fastai's default)",
        highlight=False,
    )
    console.print(f"  --set training.learning_rate={result.suggestion:.2e}", highlight=False)


@command(
    name="config",
    epilog=examples(
        "animalcnn config configs/mid.yaml",
        "animalcnn config configs/demo.yaml --set training.epochs=3 > my_experiment.yaml",
        "animalcnn config --schema > config.schema.json  # for an editor's YAML support",
    ),
)
def show_config(
    config: Annotated[
        Path | None, typer.Argument(metavar="CONFIG", help="An experiment's YAML file.")
    ] = None,
    overrides: Overrides = None,
    schema: Annotated[
        bool,
        typer.Option("--schema", help="Print the JSON Schema of config files instead."),
    ] = False,
) -> None:
    """Print the config fully resolved: every option, with its default where not set."""
    from animalcnn.errors import UserError

    if schema:
        from animalcnn.schemas import config_schema, dumps

        print(dumps(config_schema()), end="")
        return
    if config is None:
        raise UserError("config: give a config file, or --schema")
    from animalcnn.models.configs import load_config

    print(load_config(config, overrides).to_yaml(), end="")


@command(epilog=examples("animalcnn models"))
def models() -> None:
    """List the architectures and augmentations, with their options and defaults."""
    from animalcnn.console import console
    from animalcnn.reporting.tables import augmentations_table, models_table

    console.print(models_table())
    console.print(augmentations_table())
