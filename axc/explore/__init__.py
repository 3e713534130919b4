"""Design-space exploration: the ``explore`` block, run (docs/exploration.md).

    from axc.explore import explore
    result = explore("digits_cnn.onnx", "explore.ax", out="dse/")

finds the Pareto-optimal points over the block's objectives (accuracy loss,
vulnerability, LUTs, area, latency) under the target device's budget, with
NSGA-II or, for a small space, every point.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from axc.errors import UserError
from axc.explore.engine import Evaluation, Search, non_dominated
from axc.explore.evaluate import Settings, evaluate_point
from axc.explore.space import Space, Variable, build_space

__all__ = [
    "Evaluation",
    "Search",
    "Settings",
    "Space",
    "Variable",
    "build_space",
    "evaluate_point",
    "explore",
    "non_dominated",
]

PathLike = str | os.PathLike[str]


def _default_data(model: str, given: str | None, source: str) -> str:
    if given is not None:
        path = Path(given)
        if not path.is_absolute():  # relative to the directive file, like other paths
            path = Path(source).parent / path
    else:
        path = Path(model).parent / "test.npz"
    if not path.is_file():
        raise UserError(
            f"no test set at {path}: give one with --data or data=... in the explore block"
        )
    return str(path)


def explore(
    models: PathLike | Sequence[PathLike],
    directives: PathLike | Sequence[PathLike],
    *,
    out: PathLike | None = None,
    data: Sequence[PathLike] | PathLike | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    use_cache: bool = True,
    force: bool = False,
    plots: bool = True,
    progress: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Search the space the first directive file's ``explore`` block declares.

    Several ``models`` share one array (multi-model mode): each has its own
    directive file (or all share one), the block's items apply to each, and
    latency is the geometric mean of the models' latencies. ``overrides``
    replaces options of the block (``population``, ``generations``, ...).
    Returns the summary; with ``out``, also writes the front (CSV, JSON), all
    evaluations (CSV), a ``.ax`` file per front point, plots and an HTML
    report there."""
    from axc.api import load, parse_directives
    from axc.explore.evaluate import reference_accuracy

    model_list = [str(models)] if isinstance(models, (str, os.PathLike)) else list(map(str, models))
    files = (
        [str(directives)]
        if isinstance(directives, (str, os.PathLike))
        else list(map(str, directives))
    )
    if not model_list:
        raise UserError("give at least one model")
    for m in model_list:
        if not Path(m).is_file():
            raise UserError(f"no such model: {m}")
    if len(files) == 1:
        files = files * len(model_list)
    if len(files) != len(model_list):
        raise UserError(
            f"{len(model_list)} models and {len(files)} directive files: give one file, or one "
            "per model"
        )
    programs = [parse_directives(f) for f in files]
    first = programs[0]
    if first.explore is None:
        raise UserError(f"{files[0]}: no explore block to run (docs/directives.md)")
    block = first.explore
    try:
        params = dataclasses.replace(block.params, **(overrides or {}))
    except (TypeError, ValueError) as exc:
        raise UserError(f"explore: {exc}") from None
    programs = [first] + [dataclasses.replace(p, explore=block) for p in programs[1:]]
    graphs = [load(m) for m in model_list]
    spaces = [build_space(p, g) for p, g in zip(programs, graphs, strict=True)]
    if data is None:
        data_list = [
            _default_data(m, params.data, f) for m, f in zip(model_list, files, strict=True)
        ]
    else:
        given = [str(data)] if isinstance(data, (str, os.PathLike)) else list(map(str, data))
        if len(given) == 1:
            given = given * len(model_list)
        if len(given) != len(model_list):
            raise UserError(f"{len(model_list)} models and {len(given)} data sets")
        data_list = [_default_data(m, d, ".") for m, d in zip(model_list, given, strict=True)]
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    settings = Settings(
        models=tuple(model_list),
        sources=tuple(str(p.source.path) for p in programs),
        data=tuple(data_list),
        objectives=tuple(params.objectives),
        images=params.images,
        faults=params.faults,
        fault_images=params.fault_images,
        seed=params.seed,
    )
    references = [
        reference_accuracy(m, d, params.images) for m, d in zip(model_list, data_list, strict=True)
    ]
    folder = Path(out) if out is not None else None
    if folder is not None:
        _claim(folder, force)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="exploring", unit="point", file=sys.stderr)
    total = spaces[0].size()
    budget = params.population * (params.generations + 1)

    def report(step: int, done: int, text: str) -> None:
        if bar is not None:
            bar.update(step)
            bar.set_postfix_str(text[:70])

    search = Search(
        spaces,
        settings,
        references,
        algorithm=params.algorithm,
        population=params.population,
        generations=params.generations,
        seed=params.seed,
        device=params.device,
        workers=workers,
        scheduler=scheduler,
        use_cache=use_cache,
        progress=report,
    )
    if bar is not None:
        bar.total = total if search.exhaustive() else None
        bar.set_description(
            "exploring (every point)"
            if search.exhaustive()
            else f"exploring (NSGA-II, {params.generations} generations of {params.population})"
        )
    started = time.time()
    try:
        front = search.run()
    finally:
        if bar is not None:
            bar.close()
    front.sort(key=lambda e: tuple(e.objectives[o] for o in settings.objectives))  # type: ignore[index]
    summary = _summary(search, front, model_list, files, params, references, total, budget)
    summary["run"]["started"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))
    if folder is not None:
        summary["files"] = _write(folder, search, front, summary, plots)
    return summary


def _claim(folder: Path, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output path {folder} exists and is not a directory")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / "explore.json").is_file() and not force:
            raise UserError(
                f"{folder} already holds files an exploration did not write; choose an empty "
                "directory, or pass --force"
            )
        shutil.rmtree(folder / "points", ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def _summary(
    search: Search,
    front: list[Evaluation],
    models: list[str],
    files: list[str],
    params: Any,
    references: list[float],
    total: int,
    budget: int,
) -> dict[str, Any]:
    objectives = list(search.objectives)
    feasible = [e for e in search.evaluations if e.feasible]
    return {
        "models": models,
        "directives": files,
        "data": list(search.settings.data),
        "objectives": objectives,
        "algorithm": "exhaustive" if search.exhaustive() else "nsga2",
        "population": params.population,
        "generations": params.generations,
        "seed": params.seed,
        "device": params.device or "the target's",
        "reference_top1": references,
        "space_size": total,
        "budget": budget,
        "evaluations": len(search.evaluations),
        "feasible": len(feasible),
        "cache_hits": search.hits,
        "seconds": round(search.seconds, 2),
        "variables": {
            v.label: {
                "location": f"{files[0]}:{v.location}",
                "layers": list(v.layers),
                "values": list(v.texts),
            }
            for v in search.space.variables
        },
        "front": [{**e.to_json(), "files": []} for e in front],
        "points": [e.to_json() for e in search.evaluations],
        "run": {
            "workers": search.workers,
            "scheduler": search.scheduler,
            "evaluations": len(search.evaluations),
            "cache_hits": search.hits,
            "seconds": round(search.seconds, 2),
        },
    }


def _write(
    folder: Path, search: Search, front: list[Evaluation], summary: dict[str, Any], plots: bool
) -> list[str]:
    import json

    from axc.explore.report import plot_front, write_html, write_tables

    written: list[Path] = []
    points = folder / "points"
    points.mkdir(exist_ok=True)
    stems = [Path(m).stem for m in summary["models"]]
    for entry, e in zip(summary["front"], front, strict=True):
        for space, stem in zip(search.spaces, stems, strict=True):
            name = f"point-{e.id:04d}" + (f"-{stem}" if len(stems) > 1 else "") + ".ax"
            header = (
                f"Point {e.id} of an exploration of {stem} "
                f"({', '.join(f'{k} {v:.6g}' for k, v in (e.objectives or {}).items())}).\n"
                + "\n".join(f"{k} = {v}" for k, v in e.values.items())
            )
            (points / name).write_text(space.directives(e.point, header), encoding="utf-8")
            entry["files"].append(f"points/{name}")
            written.append(points / name)
    objectives = tuple(search.objectives)
    written += write_tables(folder, search.evaluations, front, objectives)
    plot = None
    if plots and front:
        try:
            made = plot_front(search.evaluations, front, objectives, folder / "front")
            written += made
            plot = made[0]
        except UserError as exc:
            summary["plots_skipped"] = str(exc)
    written.append(write_html(folder / "report.html", summary, plot))
    front_json = folder / "front.json"
    front_json.write_text(json.dumps(summary["front"], indent=1) + "\n", encoding="utf-8")
    written.append(front_json)
    names = [str(p.relative_to(folder)) for p in written] + ["explore.json"]
    summary["files"] = names
    (folder / "explore.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return names
