"""`chatbridge demo`: the whole lifecycle on the miniature world (see `demo.lifecycle`)."""

import argparse
import sys

from ..demo.lifecycle import run_demo
from ..inference.batch import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_run", help="Run folder (world, components, stages, evaluation, report).")
    parser.add_argument("--quick", action="store_true", help="A smaller world and fewer steps (about 3 minutes).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--components-only", action="store_true",
        help="Only the world and the frozen parts, which the miniature recipes (`chatbridge train --config "
        "miniature_stage1`) train from.",
    )
    parser.add_argument(
        "--doc", metavar="PAGE",
        help="Also write the report into PAGE's section between `<!-- begin run -->` and `<!-- end run -->` "
        "(how docs/demo.md is kept).",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace outputs in --out that an earlier demo run did not mark."
    )


def run(args: argparse.Namespace) -> int:
    try:
        run_demo(out=args.out, quick=args.quick, seed=args.seed, overwrite=args.overwrite,
                 components_only=args.components_only, doc=args.doc)
    except (FileExistsError, InputError) as error:
        print(f"chatbridge demo: error: {error}", file=sys.stderr)
        return 2
    return 0
