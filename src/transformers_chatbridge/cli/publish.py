"""`chatbridge publish`: check a folder, render its card and upload it to the Hub (see `hub.publish`)."""

import argparse
import sys
from pathlib import Path

from ..hub.publish import DEFAULT_LICENSE, PublishError, publish, publish_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="A ChatBridge folder (save_pretrained output, a training run).")
    parser.add_argument("--repo-id", required=True, help="Hub repo to create or update, 'namespace/name'.")
    parser.add_argument(
        "--private", action="store_true", help="Create the repo private (an existing repo keeps its visibility)."
    )
    parser.add_argument("--revision", default="main", help="Branch to commit to (created when missing; default main).")
    parser.add_argument(
        "--eval-results", nargs="+", default=[], type=Path, metavar="RESULTS_JSON",
        help="Evaluation harness results.json files ({'task', 'metrics', ...}, or a list of them) for model-index.",
    )
    parser.add_argument("--dry-run", type=Path, metavar="OUT", help="Write what would be uploaded to OUT; no network.")
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN or the one saved by `hf auth login`).")
    parser.add_argument(
        "--license", default=None, help=f"License metadata (default {DEFAULT_LICENSE}; for data sets, none)."
    )
    parser.add_argument("--base-model", nargs="+", default=[], help="Hub ids of the model(s) this one starts from.")
    parser.add_argument("--dataset", nargs="+", default=[], help="Hub ids of the training data sets.")
    parser.add_argument("--tag", nargs="+", default=[], help="Extra card tags.")
    parser.add_argument(
        "--repo-type", choices=("model", "dataset"), default="model",
        help="'dataset' publishes a built data set folder (Parquet under data/, or save_to_disk) instead.",
    )


def run(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        if args.repo_type == "dataset":
            result = publish_dataset(
                args.folder, args.repo_id, dry_run=args.dry_run, private=args.private, revision=args.revision,
                token=args.token, license=args.license, tags=args.tag,
            )
        else:
            result = publish(
                args.folder, args.repo_id, private=args.private, revision=args.revision,
                eval_results=args.eval_results, dry_run=args.dry_run, token=args.token,
                license=args.license or DEFAULT_LICENSE, base_models=args.base_model, datasets=args.dataset,
                tags=args.tag,
            )
    except PublishError as error:
        print(f"chatbridge publish: error: {error}", file=sys.stderr, flush=True)
        return 2
    except (HfHubHTTPError, OfflineModeIsEnabled) as error:
        print(f"chatbridge publish: the Hub refused or could not be reached: {error}", file=sys.stderr, flush=True)
        return 1
    for name in result["files"]:
        print(f"  {name}")
    if result["url"] is None:
        print(f"dry run: wrote {len(result['files'])} files to {args.dry_run} (nothing uploaded)")
    else:
        print(f"uploaded {len(result['files'])} files: {result['url']}")
    return 0
