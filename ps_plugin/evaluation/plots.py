"""PNG plots of search results (matplotlib, Agg backend: no display needed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def plot_cmc(curves, path):
    """CMC curves: curves {label: fractions [K] for ranks 1..K} -> PNG at path."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=label)
    ax.set(xlabel="rank", ylabel="matching rate", ylim=(0, 1.01), title="CMC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_map_vs_gallery_size(points, path):
    """mAP against gallery size: points [(gallery size, mAP)] -> PNG at path (log-scaled x)."""
    points = sorted(points)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    ax.set(xscale="log", xlabel="gallery size", ylabel="mAP", ylim=(0, 1.01), title="mAP vs gallery size")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_learning_curve(metrics_json, path, keys=None):
    """Training losses against iteration from Detectron2's metrics.json (one JSON dict per line).

    keys: scalar names to plot; default every "loss*" key and "total_loss".
    """
    import json

    rows = [json.loads(line) for line in open(metrics_json) if line.strip()]
    # A resumed run appends to the same file: keep the last row of each iteration.
    rows = sorted({r["iteration"]: r for r in rows if "iteration" in r and "total_loss" in r}.values(),
                  key=lambda r: r["iteration"])
    keys = keys or sorted({k for r in rows for k in r if k.startswith("loss") or k == "total_loss"})
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        points = [(r["iteration"], r[key]) for r in rows if key in r]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=key, lw=2 if key == "total_loss" else 1)
    ax.set(xlabel="iteration", ylabel="loss", title="Training losses", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
