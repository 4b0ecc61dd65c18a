#!/usr/bin/env python
"""Evaluate a saved person-search results file with no model (any codebase can write one).

    python tools/evaluate_results.py results.npz --protocol cuhk_sysu --protocol-file TestG100.mat
    python tools/evaluate_results.py results.npz --protocol prw --dataset-root datasets --output m.json
    python tools/evaluate_results.py old.pkl --allow-pickle --write-npz results.npz ...   # convert a trusted pickle

Format (ps_plugin/evaluation/results_io.py): an .npz of plain arrays, written by
ps_plugin.evaluation.save_results and by the evaluator (PS.EVAL.SAVE_RESULTS). A pickle can run
any code when loaded, so one is read only with --allow-pickle (and a warning). Prints a metrics
table; --output writes {"mAP", "top1", "top5", "top10"} (fractions in [0, 1]) as JSON.

CUHK-SYSU runs without torch or Detectron2 and reads the parsed protocol from a cache after the
first run (ps_plugin/data/datasets/cuhk_sysu_protocol.py); PRW loads its dataset through ps_plugin.
"""
import argparse
import json
import os

os.environ.setdefault("PS_PLUGIN_SKIP_REGISTRATION", "1")  # numpy-only import of ps_plugin (see its __init__)

from ps_plugin.evaluation.protocols import evaluate_search  # noqa: E402
from ps_plugin.evaluation.results_io import load_results, queries_for_protocol, save_results  # noqa: E402
from ps_plugin.evaluation.search_inputs import GalleryTruth  # noqa: E402


def protocol_records(args):
    """(query records, gallery truth or None) of the chosen protocol."""
    if args.protocol == "cuhk_sysu":
        from ps_plugin.data.datasets.cuhk_sysu_protocol import cuhk_sysu_search_records

        if not args.protocol_file:
            raise SystemExit("--protocol cuhk_sysu needs --protocol-file (a TestG{N}.mat)")
        return cuhk_sysu_search_records(args.protocol_file), None
    from ps_plugin.data.datasets.prw import load_prw_gallery, load_prw_queries

    if not args.dataset_root:
        raise SystemExit("--protocol prw needs --dataset-root (the datasets root holding prw/)")
    return load_prw_queries(args.dataset_root), GalleryTruth.from_records(load_prw_gallery(args.dataset_root))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results file (.npz; a pickle needs --allow-pickle)")
    parser.add_argument("--protocol", choices=("cuhk_sysu", "prw"), required=True)
    parser.add_argument("--protocol-file", help="CUHK-SYSU TestG{N}.mat")
    parser.add_argument("--dataset-root", help="PRW: the datasets root holding prw/")
    parser.add_argument("--query-set", help="pick an entry of the file's query sets (evaluator output)")
    parser.add_argument("--det-thresh", type=float, default=0.5)
    parser.add_argument("--duplicate-rule", choices=("reference", "unique"), default="reference")
    parser.add_argument("--cross-camera", action="store_true", help="PRW: search other cameras only")
    parser.add_argument("--cbgm", action="store_true")
    parser.add_argument("--cbgm-k1", type=int, default=10)
    parser.add_argument("--cbgm-k2", type=int, default=3)
    parser.add_argument("--allow-pickle", action="store_true",
                        help="read a pickle results file: it runs any code it holds, so only for files you trust")
    parser.add_argument("--write-npz", help="also save the loaded results here in the .npz format")
    parser.add_argument("--output", help="write the metrics as JSON here")
    args = parser.parse_args(argv)

    try:
        gallery, saved_queries = load_results(args.results, args.query_set, allow_pickle=args.allow_pickle)
    except (ValueError, KeyError) as error:
        raise SystemExit(f"error: {error.args[0]}")
    if args.write_npz:
        save_results(args.write_npz, gallery, saved_queries)
    records, truth = protocol_records(args)
    queries = queries_for_protocol(saved_queries, records, source=args.results)
    evaluation = evaluate_search(
        gallery, queries, truth, det_thresh=args.det_thresh, duplicate_rule=args.duplicate_rule,
        cross_camera=args.cross_camera, cbgm=args.cbgm, cbgm_k1=args.cbgm_k1, cbgm_k2=args.cbgm_k2,
    )
    metrics = evaluation.summary()
    print(f"{os.path.basename(args.results)}: {len(queries)} queries, protocol {args.protocol}")
    print("| metric | value |\n|---|---|")
    for key, value in metrics.items():
        print(f"| {key} | {100 * value:.2f}% |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(metrics, f, indent=2)
    return metrics


if __name__ == "__main__":
    main()
