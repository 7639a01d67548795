"""The ``daskgp`` command: batch precomputation and blockwise prediction jobs from a file, and
``daskgp verify`` of their outputs.

A pipeline file is a Python file that defines ``pipeline`` and ``request``; the jobs themselves
live in ``daskgp.precompute`` and ``daskgp.predict``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import runpy
import sys
from collections.abc import Sequence

from .errors import DaskgpError, PipelineSetupError
from .geometry import Roi
from .pipeline import Pipeline
from .provider import BatchProvider
from .request import BatchRequest


def load_pipeline_file(path: str | os.PathLike, names: Sequence[str] = ("pipeline", "request"),
                       optional: Sequence[str] = ()) -> dict:
    """Run the Python file ``path`` and return its ``names`` (``pipeline``, ``request``), and
    those of the ``optional`` names it defines.

    The file runs as a module named ``<run_path>`` (``if __name__ == "__main__"`` blocks do
    not run), with its folder on ``sys.path`` so it can import its neighbours. Classes it
    defines are pickled by value when tasks go to worker processes.

    Example:
        >>> names = load_pipeline_file("train_pipeline.py")  # doctest: +SKIP
        >>> names["pipeline"], names["request"]  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PipelineSetupError(f"pipeline file {path} does not exist")
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    namespace = runpy.run_path(path)
    missing = [name for name in names if name not in namespace]
    if missing:
        hint = (" (`pipeline`: a Pipeline or BatchProvider; `request`: the BatchRequest of one "
                "batch)" if set(names) == {"pipeline", "request"} else "")
        raise PipelineSetupError(
            f"pipeline file {path} does not define "
            + " or ".join(f"`{name}`" for name in missing)
            + "; it must define " + " and ".join(f"`{name}`" for name in names) + hint
        )
    found = {name: namespace[name] for name in (*names, *optional) if name in namespace}
    if "pipeline" in found and not isinstance(found["pipeline"], (Pipeline, BatchProvider)):
        raise PipelineSetupError(
            f"pipeline file {path}: `pipeline` must be a Pipeline or BatchProvider, got "
            f"{type(found['pipeline']).__name__}"
        )
    if "request" in found and not isinstance(found["request"], BatchRequest):
        raise PipelineSetupError(
            f"pipeline file {path}: `request` must be a BatchRequest, got "
            f"{type(found['request']).__name__}"
        )
    return found


@contextlib.contextmanager
def _client(address: str | None):
    """A ``distributed.Client`` connected to ``address``, or None without one."""
    if address is None:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address)
    except OSError as error:
        raise PipelineSetupError(
            f"cannot connect to the dask scheduler at {address}: {error}"
        ) from error
    with client:
        yield client


#: Optional names of a pipeline file that name model checkpoints (part of the job identity).
CHECKPOINT_NAMES = ("checkpoint", "checkpoints")


def _fingerprint(path: str, found: dict) -> str:
    """The pipeline file's fingerprint: its contents and the checkpoints it names."""
    from .io.checksums import pipeline_fingerprint

    named = [found[name] for name in CHECKPOINT_NAMES if name in found]
    checkpoints = [c for value in named if value is not None
                   for c in ([value] if isinstance(value, (str, os.PathLike)) else value)]
    return pipeline_fingerprint(path, Pipeline.to_pipeline(found["pipeline"]), checkpoints)


def _precompute(args: argparse.Namespace) -> int:
    from .precompute import precompute

    found = load_pipeline_file(args.pipeline_file, optional=CHECKPOINT_NAMES)
    with _client(args.address) as client:
        summary = precompute(
            found["pipeline"], found["request"], args.out, args.num_batches, seed=args.seed,
            scheduler=args.scheduler, client=client, batches_in_flight=args.batches_in_flight,
            progress=not args.no_progress, pipeline_hash=_fingerprint(args.pipeline_file, found),
            overwrite=args.overwrite, force=args.force, max_batches=args.max_batches,
        )
    print(
        f"daskgp precompute: wrote {summary.written} batches to {summary.path} "
        f"({summary.skipped} were already complete; {summary.num_batches} batches, "
        f"seed {summary.seed})"
    )
    return 0


def _roi(values: Sequence[int] | None) -> Roi | None:
    """``--roi OFFSET... SHAPE...`` as a ``Roi``."""
    if values is None:
        return None
    if len(values) % 2:
        raise PipelineSetupError(
            f"--roi takes an offset and a shape with one value per dimension each, got "
            f"{len(values)} values {list(values)}"
        )
    dims = len(values) // 2
    return Roi(tuple(values[:dims]), tuple(values[dims:]))


def _predict(args: argparse.Namespace) -> int:
    from .predict import predict

    roi = _roi(args.roi)
    found = load_pipeline_file(args.pipeline_file, optional=("outputs", *CHECKPOINT_NAMES))
    with _client(args.address) as client:
        summary = predict(
            found["pipeline"], found["request"], args.out, outputs=found.get("outputs"), roi=roi,
            scheduler=args.scheduler, client=client, tiles_in_flight=args.tiles_in_flight,
            progress=not args.no_progress, pipeline_hash=_fingerprint(args.pipeline_file, found),
            overwrite=args.overwrite, force=args.force, plan_once=not args.plan_per_tile,
        )
    print(
        f"daskgp predict: wrote {summary.written} tiles of {', '.join(summary.outputs)} to "
        f"{summary.path} ({summary.skipped} were already complete; {summary.num_tiles} tiles)"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from .show import show

    out, rows, columns = show(args.paths, args.out, batches=args.batches,
                              max_rows=args.max_rows, datasets=args.datasets, dpi=args.dpi,
                              roi=_roi(args.roi))
    print(f"daskgp show: wrote {out} ({rows} rows of up to {columns} panels)")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .synthetic import write_sample

    path = write_sample(args.out, shape=tuple(args.shape), seed=args.seed,
                        overwrite=args.overwrite)
    print(f"daskgp sample: wrote {path} (volumes/raw, volumes/labels/neuron_ids, "
          f"volumes/labels/mask; shape {tuple(args.shape)}, seed {args.seed})")
    return 0


def _add_show_and_sample(commands) -> None:
    show = commands.add_parser(
        "show", help="draw mid-slices of snapshots, predictions or precomputed batches to a PNG",
        description="Draw a grid of mid-slices (raw and predictions grey, labels coloured per "
        "id, masks grey) of the arrays stored in each PATH: a snapshot or prediction (zarr or "
        "HDF5) gives one row, a precompute output one row per batch.",
    )
    show.add_argument("paths", nargs="+", metavar="PATH",
                      help="snapshot, prediction or precompute output")
    show.add_argument("--out", required=True, metavar="PNG", help="the PNG to write")
    show.add_argument("--batches", type=int, nargs="+", metavar="I",
                      help="precomputed batches to draw (default: the first --max-rows)")
    show.add_argument("--max-rows", type=int, default=4, metavar="N",
                      help="precomputed batches drawn by default (default: 4)")
    show.add_argument("--datasets", nargs="+", metavar="NAME",
                      help="arrays to draw, by path or name (default: all)")
    show.add_argument("--roi", type=int, nargs="+", metavar="N",
                      help="draw only this world region: the offset, then the shape, one value "
                      "per dimension each (as for predict)")
    show.add_argument("--dpi", type=int, default=100)
    show.set_defaults(run=_show)

    sample = commands.add_parser(
        "sample", help="write the synthetic EM-like sample volume the README reads",
        description="Write a synthetic EM-like zarr group (neurons with dark membranes): "
        "volumes/raw (uint8), volumes/labels/neuron_ids (uint64), volumes/labels/mask (uint8), "
        "with gunpowder's resolution/offset attributes.",
    )
    sample.add_argument("out", metavar="OUT.zarr", help="the zarr group to write")
    sample.add_argument("--shape", type=int, nargs=3, default=(100, 400, 400),
                        metavar=("Z", "Y", "X"), help="volume shape (default: 100 400 400)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--overwrite", action="store_true",
                        help="replace OUT.zarr if it exists")
    sample.set_defaults(run=_sample)
def _verify(args: argparse.Namespace) -> int:
    from .verify import verify

    report = verify(args.out, progress=not args.no_progress)
    for problem in report.damaged:
        print(f"damaged: {problem}")
    print(f"daskgp verify: {report.checked} {report.unit}s checked in {args.out}, "
          f"{len(report.damaged)} damaged, {report.unchecked} without a checksum"
          + ("" if report.damaged else " (all good)"))
    return 1 if report.damaged else 0


def _add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="discard what the output holds for another job (another pipeline "
                        "file, checkpoint or request) and compute everything anew")
    parser.add_argument("--force", action="store_true",
                        help="take the output's lock although a job holds it: only for a "
                        "holder you know is dead (one on another host, which cannot be "
                        "checked); holders of this host that died are detected without it")


def _add_scheduler_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", choices=("sync", "threads", "processes"),
                       help="local dask scheduler (default: dask's, threads)")
    where.add_argument("--address", metavar="ADDRESS",
                       help="compute on the distributed cluster at ADDRESS (tcp://host:port)")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of ``daskgp``."""
    parser = argparse.ArgumentParser(
        prog="daskgp", description="Run daskgp pipelines as dask jobs that write zarr."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    precompute = commands.add_parser(
        "precompute", help="write the first N batches of a pipeline to a zarr group",
        description="Write batches 0..N-1 of PIPELINE_FILE's `pipeline` for its `request` to a "
        "zarr group: one array per requested key with a leading batch axis, one chunk per batch. "
        "Batch i is the i-th batch of gp.build(pipeline, seed=SEED); rerunning after an "
        "interruption skips the batches already written.",
    )
    precompute.add_argument("pipeline_file", metavar="PIPELINE_FILE",
                            help="Python file defining `pipeline` and `request`")
    precompute.add_argument("--num-batches", type=int, required=True, metavar="N")
    precompute.add_argument("--out", required=True, metavar="PATH", help="zarr group to write")
    precompute.add_argument("--seed", type=int, default=None,
                            help="base seed (default: the stored one when resuming, else 0)")
    _add_scheduler_arguments(precompute)
    precompute.add_argument("--batches-in-flight", type=int, default=None, metavar="K",
                            help="batches computed at once (default: 2 x cores or threads)")
    precompute.add_argument("--max-batches", type=int, default=None, metavar="M",
                            help="stop after writing M batches (a trial run of a big job; a "
                                 "rerun continues)")
    precompute.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_job_arguments(precompute)
    precompute.set_defaults(run=_precompute)

    predict = commands.add_parser(
        "predict", help="scan a pipeline over a volume and write its outputs to zarr",
        description="Scan PIPELINE_FILE's `pipeline` (ending in the model) with its `request` "
        "(one tile: inputs with context, and outputs) over the output ROI, writing the outputs "
        "(`outputs` in the file, else the requested keys that no source provides) to a zarr "
        "container, one block per tile. Rerunning after an interruption skips the tiles "
        "already written.",
    )
    predict.add_argument("pipeline_file", metavar="PIPELINE_FILE",
                         help="Python file defining `pipeline` and `request` (and `outputs`)")
    predict.add_argument("--out", required=True, metavar="PATH", help="zarr container to write")
    predict.add_argument("--roi", type=int, nargs="+", metavar="N",
                         help="output ROI in world units: the offset, then the shape, one value "
                         "per dimension each (default: all the pipeline provides)")
    _add_scheduler_arguments(predict)
    predict.add_argument("--tiles-in-flight", type=int, default=None, metavar="K",
                         help="tiles computed at once (default: 2 x cores or threads)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.add_argument("--plan-per-tile", action="store_true",
                         help="plan every tile (default: plan one tile of each kind and shift "
                         "it, when the pipeline is translation-equivariant)")
    _add_job_arguments(predict)
    predict.set_defaults(run=_predict)
    _add_show_and_sample(commands)

    verify = commands.add_parser(
        "verify", help="find damaged blocks of a predict or precompute output",
        description="Read back every completed tile (predict) or batch (precompute) of the "
        "zarr output OUT and compare it with the checksum stored when it was written; lists "
        "the damaged ones (unreadable chunks, missing chunks, changed data) and exits 1 if any.",
    )
    verify.add_argument("out", metavar="OUT", help="the output of daskgp predict or precompute")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.set_defaults(run=_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``daskgp`` with ``argv`` (default: the command line); return the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = make_parser().parse_args(argv)
    try:
        return args.run(args)
    except DaskgpError as error:
        print(f"daskgp {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"daskgp {args.command}: interrupted; rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
