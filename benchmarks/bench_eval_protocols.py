#!/usr/bin/env python
"""Time the search protocols on real protocol files with simulated results.

    python benchmarks/bench_eval_protocols.py [--data ../shared/data] [--repeat 3]

Rows: CUHK-SYSU TestG100 (2,900 queries x 100 gallery images, the real .mat) without and with CBGM;
PRW-size (the real PRW test json: 6,112 gallery images; queries simulated, one per identity per
camera) without and with CBGM. Results: jittered ground truth + Poisson false positives, embeddings =
identity prototype + noise (ps_plugin/evaluation/simulate.py). Timed: evaluate_search() from the
loaded results (packing included), best of --repeat.
"""
import argparse
import os
import time
from pathlib import Path

from ps_plugin.data.datasets.cuhk_sysu import load_cuhk_sysu_protocol
from ps_plugin.data.datasets.person_search_json import load_person_search_json
from ps_plugin.evaluation import GalleryResults, GalleryTruth, evaluate_search, queries_for_protocol
from ps_plugin.evaluation.simulate import ResultSimulator, simulate_results


def prw_queries(gallery_records):
    """One query record per (identity, camera): the first box of that identity seen by that camera."""
    queries, seen = [], set()
    for record in gallery_records:
        for annotation in record["annotations"]:
            key = (annotation["person_id"], record["camera_id"])
            if annotation["person_id"] >= 0 and key not in seen:
                seen.add(key)
                queries.append({**record, "annotations": [annotation], "query_index": len(queries)})
    return queries


def timed(repeat, function):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def bench(name, content, query_records, truth, repeat, cbgm_k1, cbgm_k2):
    queries = queries_for_protocol(content["queries"], query_records)
    rows = []
    for cbgm in (False, True):
        seconds, evaluation = timed(
            repeat,
            lambda: evaluate_search(
                GalleryResults.from_dict(content["gallery"]), queries, truth, cbgm=cbgm, cbgm_k1=cbgm_k1, cbgm_k2=cbgm_k2
            ),
        )
        summary = evaluation.summary()
        detections = sum(len(d["scores"]) for d in content["gallery"].values())
        rows.append(
            f"| {name} | {'yes' if cbgm else 'no'} | {len(queries)} | {len(content['gallery'])} | {detections} | "
            f"{seconds:.3f} | {100 * summary['mAP']:.2f} | {100 * summary['top1']:.2f} |"
        )
    return rows


def main():
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(default_data))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--noise", type=float, default=3.0, help="embedding noise (simulate.ResultSimulator)")
    args = parser.parse_args()

    print(f"CPU threads available: {os.cpu_count()}")
    print("| protocol | CBGM | queries | gallery images | detections | seconds | mAP % | top-1 % |")
    print("|---|---|---|---|---|---|---|---|")
    records = load_cuhk_sysu_protocol(os.path.join(args.data, "cuhk_sysu", "TestG100.mat"))
    content = simulate_results(ResultSimulator(dim=256, noise=args.noise, false_positives=4, seed=0), records)
    for row in bench("CUHK-SYSU TestG100", content, records, None, args.repeat, 10, 3):
        print(row)

    gallery_records = load_person_search_json(os.path.join(args.data, "prw", "test_pid.json"), image_root="")
    query_records = prw_queries(gallery_records)
    content = simulate_results(ResultSimulator(dim=256, noise=args.noise, false_positives=2, seed=1), query_records, gallery_records)
    truth = GalleryTruth.from_records(gallery_records)
    for row in bench("PRW-size (test json)", content, query_records, truth, args.repeat, 30, 4):
        print(row)


if __name__ == "__main__":
    main()
