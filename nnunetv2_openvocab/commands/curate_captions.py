"""``nnUNetv2_openvocab_curate_captions``: command-line entry for caption_curation.curate.curate_captions."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from caption_curation.balancing import DEFAULT_T_PER_REPORT, BalanceSettings
from caption_curation.curate import BACKENDS, DEFAULT_MAX_FAILURE_RATE, LLMSettings, curate_captions
from nnunetv2_openvocab.user_errors import exit_on_user_error

EPILOG = """\
examples:
  # offline rule-based captions for the 800 shared reports, matched against the full RadLex list and balanced
  nnUNetv2_openvocab_curate_captions --reports ../shared/data/ct_rate_reports/train.csv --out captions_out \
      --radlex ../shared/data/radlex/tekram_Radlex_2017.csv --balance-seed 0

  # Llama-3 served by vLLM, 8 SLURM array tasks sharing one output folder (key read from $OPENAI_API_KEY)
  nnUNetv2_openvocab_curate_captions --reports train_reports.csv --out /shared/captions \\
      --backend openai --base-url http://gpu-node:8000/v1 --model meta-llama/Meta-Llama-3-70B-Instruct \\
      --shard $SLURM_ARRAY_TASK_ID --num-shards 8 --volume-root /data/ct_rate/train
  # then once more without --shard/--num-shards: merges all shards from the cache, no new requests

Outputs in --out: captions.csv, manifest.jsonl (curated reports only), failures.jsonl, caption_stats.json and
three PNG plots (in --out/shard-<i>-of-<N>/ for sharded runs). Rerunning the same command resumes.
Exit status 1 when the server refuses the key/URL/model, when every report failed, or when more than
--max-failure-rate of them did (the outputs are still written).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnUNetv2_openvocab_curate_captions",
        description="Decompose radiology reports into organ-level captions and keep those naming RadLex terms.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reports", required=True, type=Path,
                        help="reports CSV: CT-RATE (VolumeName, Findings_EN, Impressions_EN) or AccessionNo, report_text")
    parser.add_argument("--out", required=True, type=Path, help="output folder (also holds the LLM cache)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="offline", help="caption maker (default: offline)")
    parser.add_argument("--base-url", help="OpenAI-compatible server, e.g. https://api.openai.com/v1 (openai backend)")
    parser.add_argument("--model", help="model name on that server (openai backend)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                        help="NAME of the environment variable holding the API key (default: OPENAI_API_KEY)")
    parser.add_argument("--radlex", type=Path,
                        help="RadLex export (.csv, .owl or .txt); default: the shipped list of anatomy/finding terms")
    parser.add_argument("--balance-t", type=int, metavar="T",
                        help="MetaCLIP balancing: a RadLex term matched by more than T captions keeps each with "
                             f"probability T/count (default: {DEFAULT_T_PER_REPORT:g} x number of reports)")
    parser.add_argument("--balance-seed", type=int, default=0, help="seed of the balancing draws (default 0)")
    parser.add_argument("--no-balance", action="store_true", help="keep every RadLex-matched caption")
    parser.add_argument("--shard", type=int, default=0, help="this worker's shard, 0..N-1 (default 0)")
    parser.add_argument("--num-shards", type=int, default=1, help="number of shards N (default 1)")
    parser.add_argument("--volume-root", help="folder joined in front of each volume name in manifest.jsonl/captions.csv")
    parser.add_argument("--processes", type=int, help="worker processes for the offline backend (default: min(4, CPUs))")
    parser.add_argument("--workers", type=int, default=8, help="concurrent LLM requests (default 8)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per LLM request (default 120)")
    parser.add_argument("--max-retries", type=int, default=6, help="retries on 429/5xx/timeouts (default 6)")
    parser.add_argument("--retry-failed", action="store_true", help="ask again for reports whose answer failed before")
    parser.add_argument("--max-failure-rate", type=float, default=DEFAULT_MAX_FAILURE_RATE,
                        help="exit non-zero when more than this fraction of reports got no captions "
                             "(default %(default)s)")
    parser.add_argument("--prompt", type=Path, help="prompt JSON (default: caption_curation/data/caption_prompt_v1.json)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend == "openai" and not (args.base_url and args.model):
        parser.error("--backend openai needs --base-url and --model")
    if args.balance_t is not None and (args.balance_t < 1 or args.no_balance):
        parser.error("--balance-t needs a value >= 1 and cannot be combined with --no-balance")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    llm = None
    if args.backend == "openai":
        llm = LLMSettings(
            base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, workers=args.workers,
            timeout_s=args.timeout, max_retries=args.max_retries, retry_failed=args.retry_failed,
            prompt_path=args.prompt,
        )
    with exit_on_user_error(parser.prog, traceback=args.verbose):
        summary = curate_captions(
            args.reports, args.out, backend=args.backend, llm=llm, radlex=args.radlex,
            shard=args.shard, num_shards=args.num_shards, volume_root=args.volume_root, processes=args.processes,
            balance=None if args.no_balance else BalanceSettings(args.balance_t, args.balance_seed),
        )
        print(
            f"{summary.reports} reports ({summary.failed_reports} failed): {summary.captions_before_filter} captions, "
            f"{summary.captions_kept} kept after RadLex matching{'' if args.no_balance else ' and balancing'}; "
            f"outputs in {summary.output_dir}"
        )
        summary.check_failure_rate(args.max_failure_rate)


if __name__ == "__main__":
    main()
