"""SimSiam's self-supervised term on person boxes (Tian et al. 2024, Eq. 5-6; Chen and He 2021)."""
import torch
import torch.nn.functional as F
from torch import nn

from ps_plugin.modeling.common.reid_head import _batch_norm

__all__ = ["PredictionMLP", "embedding_spread", "negative_cosine", "paired_box_rows", "simsiam_loss"]


class PredictionMLP(nn.Module):
    """SimSiam's prediction head h -> z: Linear(D, H) -> BN -> ReLU -> Linear(H, D). [P, D] -> [P, D]."""

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=False)
        self.bn = nn.BatchNorm1d(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, h):
        return self.fc2(F.relu(_batch_norm(self.bn, self.fc1(h))))


def negative_cosine(target, prediction):
    """C of Eq. 5, averaged over the P pairs: -mean_k cos(target_k, prediction_k). [P, D] x2 -> scalar."""
    return -(F.normalize(target, dim=1) * F.normalize(prediction, dim=1)).sum(dim=1).mean()


def simsiam_loss(h1, h2, predictor):
    """L_con of Eq. 6 = C(sg(h2), z1) / 2 + C(sg(h1), z2) / 2 with z_i = predictor(h_i).

    h1, h2: [P, D], row k of each the same physical box in the two views. P = 0 gives 0, still
    attached to the predictor and to h1, h2 (every parameter keeps a gradient, DDP stays in step).
    """
    if h1.shape[0] == 0:
        return sum(p.sum() for p in predictor.parameters()) * 0.0 + (h1.sum() + h2.sum()) * 0.0
    z1, z2 = predictor(h1), predictor(h2)
    return 0.5 * negative_cosine(h2.detach(), z1) + 0.5 * negative_cosine(h1.detach(), z2)


def paired_box_rows(box_ids_1, box_ids_2):
    """Rows of the boxes seen in both views: (rows of view 1 [P], rows of view 2 [P]), paired by
    gt_box_ids (int64 [N1], [N2]), in view 1's order. A box lost in either view is left out."""
    position = {int(b): row for row, b in enumerate(box_ids_2.tolist())}
    rows = [(row, position[int(b)]) for row, b in enumerate(box_ids_1.tolist()) if int(b) in position]
    device = box_ids_1.device
    if not rows:
        return torch.zeros(0, dtype=torch.int64, device=device), torch.zeros(0, dtype=torch.int64, device=device)
    first, second = zip(*rows)
    return torch.tensor(first, device=device), torch.tensor(second, device=device)


def embedding_spread(embeddings):
    """sqrt(D) x the mean per-dimension std of L2-normalised embeddings [P, D]: about 1 for
    embeddings spread over the sphere, 0 for a collapsed (constant) output (SimSiam Sec. 4.1).
    NaN-free: 0 for P < 2."""
    if embeddings.shape[0] < 2:
        return 0.0
    normalised = F.normalize(embeddings.detach(), dim=1)
    return float(normalised.std(dim=0).mean() * embeddings.shape[1] ** 0.5)
