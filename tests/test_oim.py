"""OIM loss against a hand-computed case (Xiao et al. 2017, Eq. 1-2)."""
import math

import pytest
import torch

from ps_plugin.modeling.common import OIMLoss


def _oim_with_tables():
    """LUT rows v0=(1,0), v1=(0,1); queue u0=(-1,0), u1=(0,0); scalar 30."""
    oim = OIMLoss(num_pids=2, queue_size=2, dim=2, momentum=0.5, scalar=30.0)
    oim.lut.features.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    oim.queue.features.copy_(torch.tensor([[-1.0, 0.0], [0.0, 0.0]]))
    return oim


def test_oim_loss_value_gradient_and_updates_match_hand_computation():
    oim = _oim_with_tables()
    x = torch.tensor([[0.6, 0.8], [0.0, -1.0]], requires_grad=True)
    loss = oim(x, torch.tensor([0, -1]))
    # logits of the labeled feature: 30 * (0.6, 0.8, -0.6, 0) = (18, 24, -18, 0); target 0.
    # loss = log(e^18 + e^24 + e^-18 + e^0) - 18 = 6 + log(1 + e^-6 + e^-42 + e^-24)
    assert loss.item() == pytest.approx(6.0024757, abs=1e-6)
    loss.backward()
    # d loss / d x = 30 * (sum_j p_j b_j - b_target); the unlabeled feature gets no gradient.
    p = torch.softmax(torch.tensor([18.0, 24.0, -18.0, 0.0]), 0)
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    expected = 30 * (p @ bank - bank[0])
    assert torch.allclose(x.grad[0], expected, atol=1e-4)
    assert expected[0].item() == pytest.approx(-30 * (1 - p[0] + p[2]).item())
    assert torch.equal(x.grad[1], torch.zeros(2))
    # LUT row 0: normalize(0.5 * (1, 0) + 0.5 * (0.6, 0.8)) = (0.8, 0.4) / sqrt(0.8) = (0.894427, 0.447214)
    assert torch.allclose(oim.lut.features[0], torch.tensor([0.894427, 0.447214]), atol=1e-6)
    assert torch.equal(oim.lut.features[1], torch.tensor([0.0, 1.0]))
    # the unlabeled feature is written at the queue pointer
    assert torch.equal(oim.queue.features[0], torch.tensor([0.0, -1.0]))
    assert int(oim.queue.pointer) == 1


def test_oim_lookup_table_update_uses_the_given_momentum():
    """Momentum 0.9 (not 0.5, where m and 1 - m coincide) reaches the LUT update of OIMLoss."""
    oim = OIMLoss(num_pids=2, queue_size=2, dim=2, momentum=0.9, scalar=30.0)
    oim.lut.features.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    oim(torch.tensor([[0.6, 0.8]]), torch.tensor([0]))
    # normalize(0.9 * (1, 0) + 0.1 * (0.6, 0.8)) = (0.96, 0.08) / sqrt(0.928) = (0.996546, 0.083045)
    assert torch.allclose(oim.lut.features[0], torch.tensor([0.996546, 0.083045]), atol=1e-6)
    assert torch.equal(oim.lut.features[1], torch.tensor([0.0, 1.0]))


def test_oim_uniform_logits_give_log_of_table_size():
    oim = OIMLoss(num_pids=7, queue_size=5, dim=4)
    x = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    loss = oim(x, torch.tensor([2, 5, 2]))
    assert loss.item() == pytest.approx(math.log(12), abs=1e-6)


def test_oim_without_labeled_features_is_zero_and_fills_queue():
    oim = OIMLoss(num_pids=3, queue_size=4, dim=2)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = oim(x, torch.tensor([-1, -1]))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros(2, 2))
    assert torch.equal(oim.queue.features[:2], x.detach())
    assert torch.equal(oim.lut.features, torch.zeros(3, 2))


def test_oim_eval_mode_does_not_update_tables():
    oim = _oim_with_tables().eval()
    before = {k: v.clone() for k, v in oim.state_dict().items()}
    oim(torch.tensor([[0.6, 0.8]]), torch.tensor([1]))
    assert all(torch.equal(before[k], v) for k, v in oim.state_dict().items())


def test_oim_rejects_person_id_beyond_table():
    oim = OIMLoss(num_pids=3, queue_size=2, dim=2)
    with pytest.raises(ValueError, match="NUM_PIDS"):
        oim(torch.tensor([[1.0, 0.0]]), torch.tensor([3]))
