"""Per-query average precision and CMC from ranked candidate lists, for all queries at once.

A query's candidate list is every gallery detection it is compared with: one row of a score
matrix [Q, L] (-inf: not in the list) with a bool positive matrix beside it.

AP follows `sklearn.metrics.average_precision_score` on the list, scaled by the recall factor
(found positives / positives in the protocol), 0 when nothing is found:

    AP_q = (1 / num_gt_q) * sum_{positive p} TP(>= s_p) / N(>= s_p)

where N(>= s) counts entries scoring at least s (tied scores form one threshold, as in sklearn)
and TP(>= s) the positives among them. CMC: a query hits top-k when its best positive ranks within
the first k, ties with negatives counted against it: rank = 1 + #negatives scoring >= the best
positive.
"""
import numpy as np

DEFAULT_TOPK = (1, 5, 10)


def pad_segments(values, segment_start, fill):
    """Ragged segments -> matrix: values [E] with segment q = values[segment_start[q]:segment_start[q+1]]
    -> [Q, max length], short rows padded with `fill`."""
    lengths = np.diff(segment_start)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    padded = np.full((len(lengths), int(lengths.max()) if len(lengths) else 0), fill, dtype=np.asarray(values).dtype)
    padded[rows, np.arange(len(values)) - segment_start[rows]] = values
    return padded


def _count_at_least(sorted_rows, rows, thresholds):
    """#entries >= thresholds[p] in row rows[p] of an ascending-sorted matrix (vectorised bisection)."""
    low = np.zeros(len(rows), dtype=np.int64)
    high = np.full(len(rows), sorted_rows.shape[1], dtype=np.int64)
    while (low < high).any():
        active = low < high
        middle = (low + high) // 2
        below = active & (sorted_rows[rows, np.minimum(middle, sorted_rows.shape[1] - 1)] < thresholds)
        low = np.where(below, middle + 1, low)
        high = np.where(active & ~below, middle, high)
    return sorted_rows.shape[1] - low


def ranking_metrics(scores, positive, num_gt):
    """Vectorised AP and best-positive rank.

    Args:
        scores: float [Q, L], one row per query (-inf: not in the list); positive: bool [Q, L];
        num_gt: int [Q], positives in the protocol (>= found positives).
    Returns:
        ap: float64 [Q]; hit_rank: float64 [Q], 1-based rank of the best positive (inf if none).
    """
    num_queries = len(scores)
    rows, cols = np.nonzero(positive)
    values = scores[rows, cols]
    count_ge = _count_at_least(np.sort(scores, axis=1), rows, values)
    # positives ranked within their query: tp_ge = positives scoring >= this one (ties grouped)
    order = np.lexsort((-values, rows))
    rows, values, count_ge = rows[order], values[order], count_ge[order]
    is_group_end = np.ones(len(rows), dtype=bool)
    is_group_end[:-1] = (rows[1:] != rows[:-1]) | (values[1:] != values[:-1])
    group_start = np.concatenate([[True], is_group_end[:-1]]) if len(rows) else is_group_end
    group_end = np.flatnonzero(is_group_end)[np.cumsum(group_start) - 1]
    tp_ge = group_end - np.searchsorted(rows, rows, side="left") + 1

    ap_sum = np.bincount(rows, weights=tp_ge / count_ge, minlength=num_queries)
    ap = ap_sum / np.maximum(np.asarray(num_gt, dtype=np.float64), 1.0)
    hit_rank = np.full(num_queries, np.inf)
    hit_queries, best = np.unique(rows, return_index=True)
    hit_rank[hit_queries] = (count_ge[best] - tp_ge[best]) + 1
    return ap, hit_rank


def cmc_curve(hit_rank, max_rank=50):
    """Fraction of queries whose best positive ranks within k, for k = 1..max_rank -> [max_rank]."""
    ks = np.arange(1, max_rank + 1)
    return (np.asarray(hit_rank)[:, None] <= ks[None, :]).mean(axis=0) if len(hit_rank) else np.zeros(max_rank)


def summarize(ap, hit_rank, topk=DEFAULT_TOPK):
    """{"mAP": mean AP, "top1": ..., "top5": ..., "top10": ...} as fractions in [0, 1]."""
    summary = {"mAP": float(np.mean(ap)) if len(ap) else 0.0}
    for k in topk:
        summary[f"top{k}"] = float(np.mean(np.asarray(hit_rank) <= k)) if len(hit_rank) else 0.0
    return summary
