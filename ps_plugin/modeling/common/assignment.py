"""Label assignment solvers shared by several methods: one-to-one (Hungarian / Jonker-Volgenant,
scipy) and entropic optimal transport (log-domain Sinkhorn, batched over images)."""
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["hungarian_match", "max_weight_matching", "sinkhorn", "decode_plan"]


def hungarian_match(cost):
    """Minimum-cost one-to-one assignment of a cost matrix [N, M] (N predictions, M targets).

    Returns (pred_indices, target_indices): int64 tensors of length min(N, M) on `cost`'s device,
    sorted by prediction index.
    """
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    device = cost.device
    return torch.as_tensor(rows, dtype=torch.long, device=device), torch.as_tensor(cols, dtype=torch.long, device=device)


def max_weight_matching(weight, edges):
    """Maximum-weight bipartite matching (Kuhn-Munkres) restricted to the allowed edges.

    weight [A, B] non-negative, edges [A, B] bool (pairs that may be matched) -> (rows, cols) int64
    arrays of the matched pairs, every pair an edge, each row and column used at most once, and
    sum(weight[rows, cols]) maximal. Non-edges enter the full assignment with weight 0 and are
    dropped afterwards, which is exact for non-negative weights: any edge matching extends to a
    full assignment of the same weight.
    """
    weight = torch.as_tensor(weight, dtype=torch.float64)
    edges = torch.as_tensor(edges, dtype=torch.bool)
    if (weight[edges] < 0).any():
        raise ValueError("max_weight_matching needs non-negative weights on the edges")
    rows, cols = linear_sum_assignment(torch.where(edges, weight, 0.0).numpy(), maximize=True)
    keep = edges.numpy()[rows, cols]
    return rows[keep], cols[keep]


def sinkhorn(cost, supply, demand, epsilon=0.1, iterations=50, absorb_every=10):
    """Entropic optimal transport (Cuturi 2013), log domain, solved for B problems at once.

        min_pi <pi, C> - epsilon * H(pi)   s.t.   pi 1 = supply,   pi^T 1 = demand

    with potentials f [B, M], g [B, N] (in units of eps) updated alternately:
        f_i = log a_i - logsumexp_j(g_j - C_ij / eps)
        g_j = log b_j - logsumexp_i(f_i - C_ij / eps)
    and plan pi_ij = exp(f_i + g_j - C_ij / eps). Every `absorb_every`-th iteration computes the
    potentials by these log-sum-exps and the plan from them; the iterations in between apply the
    same updates as row / column scalings of that plan (pi <- pi * a / pi 1, then
    pi <- pi * b / pi^T 1: exp of the potential updates), and the potentials absorb the scalings
    (f += log(a / pi 1), g += log(b / pi^T 1)). After an exact step every row holds mass a_i and every column b_j, so no scaling
    divides by an underflowed sum: the result is the log-domain iteration's, at a quarter of its
    exponentials. The last update is g's, so the column sums (demands) hold exactly and the row
    sums to the solver's accuracy.

    Args:
        cost: [B, M, N] finite costs (entries of padded rows / columns are ignored).
        supply: [B, M] >= 0; a 0 marks a padded (or empty) supplier.
        demand: [B, N] >= 0; a 0 marks a padded demander. Each problem's supply and demand sums
            must be equal (an unbalanced problem converges to the demand side's marginal).
        epsilon: entropic regularisation (in cost units).
        iterations: number of (f, g) update pairs.
        absorb_every: iterations per exact log-sum-exp step (1: every iteration in log-sum-exp form).
    Returns:
        plan [B, M, N], zero on padded rows and columns; all zeros for a problem with no supply.
    """
    if cost.dim() != 3 or supply.shape != cost.shape[:2] or demand.shape != (cost.shape[0], cost.shape[2]):
        raise ValueError(f"sinkhorn: cost [B, M, N], supply [B, M], demand [B, N]; got {tuple(cost.shape)}, "
                         f"{tuple(supply.shape)}, {tuple(demand.shape)}")
    valid = (supply[:, :, None] > 0) & (demand[:, None, :] > 0)
    kernel = (-cost / epsilon).masked_fill(~valid, -torch.inf)
    log_a = supply.log()
    log_b = demand.log()
    f = torch.zeros_like(supply)
    g = torch.zeros_like(demand)
    plan = torch.zeros_like(cost)
    for iteration in range(iterations):
        if iteration % absorb_every == 0:
            f = log_a - _finite(torch.logsumexp(kernel + g[:, None, :], dim=2))
            g = log_b - _finite(torch.logsumexp(kernel + f[:, :, None], dim=1))
            plan = torch.exp(kernel + f[:, :, None] + g[:, None, :])
            continue
        row_scale = _ratio(supply, plan.sum(dim=2))
        plan = plan * row_scale[:, :, None]
        column_scale = _ratio(demand, plan.sum(dim=1))
        plan = plan * column_scale[:, None, :]
        f = f + row_scale.log()
        g = g + column_scale.log()
    return plan


def _ratio(target, total):
    """target / total, 0 where the target is 0 (padded rows / columns)."""
    return torch.where(target > 0, target / total.clamp(min=torch.finfo(total.dtype).tiny), torch.zeros_like(target))


def _finite(lse):
    """A logsumexp over no valid entry is -inf; it only multiplies zero mass, so read it as 0."""
    return torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))


def decode_plan(plan):
    """Each demander to the supplier that sends it the most mass: plan [B, M, N] -> [B, N] int64."""
    return plan.argmax(dim=1)
