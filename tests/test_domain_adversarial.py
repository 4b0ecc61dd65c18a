"""Gradient reversal, multi-class domain losses and the DA-Faster consistency term, by hand."""
import math

import pytest
import torch

from ps_plugin.modeling.common.domain_adversarial import (
    DomainAlignmentModule,
    GradientReversal,
    ImageDomainClassifier,
    InstanceDomainClassifier,
    domain_consistency_loss,
    image_domain_loss,
    instance_domain_loss,
)


def test_grl_is_identity_forward_and_negates_times_weight_backward():
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    y = GradientReversal(0.25)(x)
    assert torch.equal(y, x)
    upstream = torch.tensor([[1.0, 2.0], [-4.0, 8.0]])
    y.backward(upstream)
    assert torch.equal(x.grad, -0.25 * upstream)


def test_grl_rejects_a_negative_weight():
    with pytest.raises(ValueError, match="weight must be >= 0"):
        GradientReversal(-1.0)


def test_image_loss_is_the_cross_entropy_of_every_location():
    # Image 0 (domain 2): two locations with logits (0, 0, ln 3) and (0, 0, 0) -> p = 3/5 and 1/3.
    # Image 1 (domain 0): logits (ln 4, 0, 0) twice -> p = 4/6.
    logits = torch.zeros(2, 3, 1, 2)
    logits[0, 2, 0, 0] = math.log(3.0)
    logits[1, 0] = math.log(4.0)
    expected = -(math.log(3 / 5) + math.log(1 / 3) + 2 * math.log(4 / 6)) / 4
    assert image_domain_loss(logits, torch.tensor([2, 0])).item() == pytest.approx(expected)


def test_instance_loss_is_the_mean_cross_entropy():
    logits = torch.tensor([[math.log(2.0), 0.0], [0.0, 0.0]])
    expected = -(math.log(2 / 3) + math.log(1 / 2)) / 2
    assert instance_domain_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(expected)


def test_consistency_compares_each_instance_with_its_images_mean_prediction():
    # Image 0: two locations, p = (1/2, 1/2) and (3/4, 1/4) -> mean (5/8, 3/8).
    # Image 1: one location p = (1/5, 4/5) (tiled over the 1x2 map).
    image_logits = torch.zeros(2, 2, 1, 2)
    image_logits[0, 0, 0, 1] = math.log(3.0)
    image_logits[1, 1] = math.log(4.0)
    # Instance of image 0 with p = (1/2, 1/2); instance of image 1 with p = (1/5, 4/5).
    instance_logits = torch.tensor([[0.0, 0.0], [0.0, math.log(4.0)]])
    loss = domain_consistency_loss(image_logits, instance_logits, torch.tensor([0, 1]))
    distance_0 = math.hypot(5 / 8 - 1 / 2, 3 / 8 - 1 / 2)
    assert loss.item() == pytest.approx((distance_0 + 0.0) / 2)


def test_empty_inputs_give_zero_losses_attached_to_the_graph():
    image_logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    instance_logits = torch.zeros(0, 3, requires_grad=True)
    index = torch.zeros(0, dtype=torch.int64)
    ins = instance_domain_loss(instance_logits, index)
    cst = domain_consistency_loss(image_logits, instance_logits, index)
    img = image_domain_loss(image_logits[:0], index)
    total = ins + cst + img
    assert total.item() == 0.0
    total.backward()
    assert torch.equal(image_logits.grad, torch.zeros_like(image_logits))


def test_classifier_shapes():
    assert ImageDomainClassifier(8, 5, (4, 4))(torch.randn(2, 8, 3, 6)).shape == (2, 5, 3, 6)
    assert InstanceDomainClassifier(8 * 2 * 2, 5, (16,))(torch.randn(7, 8, 2, 2)).shape == (7, 5)


def test_the_instance_features_receive_the_reversed_gradient_of_their_losses():
    """The gradient reaching the instance features is -grl_weight x the plain gradient of the terms
    that read them (L_ins + L_cst)."""
    torch.manual_seed(0)
    module = DomainAlignmentModule(4, 6, num_domains=3, grl_weight=0.5, instance_hidden=(8,), dropout=0.0)
    image = torch.randn(3, 4, 2, 2, requires_grad=True)
    instance = torch.randn(5, 6, requires_grad=True)
    index = torch.tensor([0, 0, 1, 2, 2])
    losses = module(image, torch.tensor([0, 1, 2]), instance, index)
    assert set(losses) == {"img", "ins", "cst"}
    sum(losses.values()).backward()
    reversed_grad = instance.grad.clone()

    # The same terms computed past the GRL: the plain gradient.
    plain = instance.detach().clone().requires_grad_(True)
    logits = module.instance_classifier.layers(plain)
    image_logits = module.image_classifier.layers(image.detach())
    plain_loss = instance_domain_loss(logits, torch.tensor([0, 0, 1, 2, 2])) + domain_consistency_loss(
        image_logits, logits, index
    )
    plain_loss.backward()
    assert torch.allclose(reversed_grad, -0.5 * plain.grad, atol=1e-6)


def test_domain_ids_beyond_the_classifier_are_an_error():
    module = DomainAlignmentModule(4, 6, num_domains=2)
    with pytest.raises(ValueError, match="do not fit a domain classifier of 2 classes"):
        module(torch.randn(2, 4, 1, 1), torch.tensor([0, 2]), torch.randn(1, 6), torch.tensor([1]))
