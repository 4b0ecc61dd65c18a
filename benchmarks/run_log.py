"""The result log of the benchmark scripts that train one run per call (so that each run fits a turn of
the shared CPU): every run appends a JSON line to <root>/results.jsonl, and the script prints the table of
all runs so far."""
import json
from pathlib import Path


def append_record(root, record):
    """Append `record` (a JSON-serialisable dict) to <root>/results.jsonl -> every record logged there."""
    results = Path(root) / "results.jsonl"
    with open(results, "a") as f:
        f.write(json.dumps(record) + "\n")
    return [json.loads(line) for line in results.read_text().splitlines()]


def percent_cells(metrics, keys):
    """' | '-joined cells of metrics[key] (fractions) as percentages with one decimal."""
    return " | ".join(f"{100 * metrics[key]:.1f}" for key in keys)
