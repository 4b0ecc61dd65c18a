"""Shared assignment solvers: log-domain Sinkhorn (against scipy's exact LP) and Kuhn-Munkres
(against brute force)."""
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from ps_plugin.modeling.common.assignment import decode_plan, max_weight_matching, sinkhorn


def random_problem(generator, batch, suppliers, demanders, k):
    """B problems: `suppliers` GTs with k units each plus a background row with the rest; demand 1."""
    cost = torch.rand(batch, suppliers + 1, demanders, generator=generator, dtype=torch.float64) * 3
    supply = torch.full((batch, suppliers + 1), float(k), dtype=torch.float64)
    supply[:, -1] = demanders - suppliers * k
    return cost, supply, torch.ones(batch, demanders, dtype=torch.float64)


def test_sinkhorn_meets_both_marginals():
    cost, supply, demand = random_problem(torch.Generator().manual_seed(0), 3, 4, 40, 3)
    plan = sinkhorn(cost, supply, demand, epsilon=0.1, iterations=200)
    assert torch.allclose(plan.sum(dim=2), supply, atol=1e-3)
    assert torch.allclose(plan.sum(dim=1), demand, atol=1e-3)
    assert (plan >= 0).all()


def test_batched_sinkhorn_equals_one_problem_at_a_time():
    cost, supply, demand = random_problem(torch.Generator().manual_seed(1), 4, 3, 12, 2)
    batched = sinkhorn(cost, supply, demand, iterations=30)
    for b in range(4):
        single = sinkhorn(cost[b : b + 1], supply[b : b + 1], demand[b : b + 1], iterations=30)
        assert torch.allclose(batched[b], single[0], atol=1e-12)


def test_scaling_steps_between_log_sum_exp_steps_give_the_log_domain_iteration():
    cost, supply, demand = random_problem(torch.Generator().manual_seed(3), 3, 5, 30, 2)
    supply[1, 2] = 0.0  # an empty supplier
    supply[1, 0] += 2.0
    log_domain = sinkhorn(cost, supply, demand, epsilon=0.05, iterations=37, absorb_every=1)
    absorbed = sinkhorn(cost, supply, demand, epsilon=0.05, iterations=37, absorb_every=10)
    assert torch.allclose(absorbed, log_domain, rtol=0, atol=1e-9)


def exact_transport(cost, supply):
    """scipy linprog of min <pi, C>, rows sum to supply, columns to 1 -> supplier of each column."""
    m, n = cost.shape
    rows = np.zeros((m, m * n))
    cols = np.zeros((n, m * n))
    for i in range(m):
        rows[i, i * n : (i + 1) * n] = 1
    for j in range(n):
        cols[j, j::n] = 1
    result = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([supply, np.ones(n)]),
                     bounds=(0, None), method="highs")
    return result.x.reshape(m, n).argmax(axis=0), result.fun


def optimum_gap(cost, supply):
    """Cost difference between the best and second-best integral assignment (brute force)."""
    m, n = cost.shape
    totals = sorted(
        cost[list(a), range(n)].sum()
        for a in itertools.product(range(m), repeat=n)
        if np.array_equal(np.bincount(a, minlength=m), supply)
    )
    return totals[1] - totals[0]


def test_sinkhorn_decode_equals_exact_transport_on_unique_optima():
    generator = torch.Generator().manual_seed(2)
    checked = 0
    while checked < 5:
        cost, supply, demand = random_problem(generator, 1, 2, 6, 2)
        c, s = cost[0].numpy(), supply[0].numpy()
        if optimum_gap(c, s) < 0.2:  # near-ties: the optimum is not unique enough to compare
            continue
        expected, _ = exact_transport(c, s)
        plan = sinkhorn(cost, supply, demand, epsilon=0.02, iterations=500)
        assert decode_plan(plan)[0].tolist() == expected.tolist()
        checked += 1


def test_sinkhorn_no_nan_when_supply_exceeds_demand_or_a_row_is_empty():
    cost = torch.rand(2, 4, 5, dtype=torch.float64)
    supply = torch.tensor([[3.0, 3.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # m*k > n; no supplier
    demand = torch.tensor([[1.0] * 5, [1.0, 1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    plan = sinkhorn(cost, supply, demand)
    assert torch.isfinite(plan).all()
    assert torch.allclose(plan[0].sum(dim=0), demand[0])
    assert (plan[0, 3] == 0).all() and (plan[1] == 0).all()


def test_sinkhorn_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="supply"):
        sinkhorn(torch.zeros(1, 2, 3), torch.ones(1, 3), torch.ones(1, 3))


def brute_force_matching(weight, edges):
    a, b = weight.shape
    best = 0.0
    for size in range(1, min(a, b) + 1):
        for rows in itertools.combinations(range(a), size):
            for cols in itertools.permutations(range(b), size):
                if all(edges[r, c] for r, c in zip(rows, cols)):
                    best = max(best, sum(weight[r, c] for r, c in zip(rows, cols)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_kuhn_munkres_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 5, size=2))
    weight = rng.random(shape)
    edges = rng.random(shape) < 0.6
    rows, cols = max_weight_matching(torch.from_numpy(weight), torch.from_numpy(edges))
    assert edges[rows, cols].all()
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert weight[rows, cols].sum() == pytest.approx(brute_force_matching(weight, edges))
