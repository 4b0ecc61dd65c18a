"""Adversarial domain alignment over N domains (dataset ids), DA-Faster style (Chen et al. 2018).

Shared by hybrid pre-training's intra-task alignment modules (Tian et al. 2024, Eq. 7, Fig. 4:
N = number of pre-training datasets) and LAID / DAPS (N = 2: source, target).

- `grad_reverse` / `GradientReversal`: identity forward, gradient x (-weight) backward
  (Ganin and Lempitsky 2015).
- `ImageDomainClassifier`: GRL -> 1x1 convs -> per-location domain logits [B, N, H, W].
- `InstanceDomainClassifier`: GRL -> FC stack -> domain logits [R, N].
- `image_domain_loss`, `instance_domain_loss`: multi-class cross entropy against the dataset id.
- `domain_consistency_loss`: distance between the image-level prediction (averaged over the map)
  and the prediction of each instance of that image.
- `DomainAlignmentModule`: both classifiers and the three terms, L_adv = L_img + L_ins + L_cst.

The classifiers sit behind the GRL, so minimising L_adv trains them to recognise the domain while
the features below the GRL receive the reversed gradient and become domain-invariant. The
consistency term is computed on the classifiers' outputs, so its gradient reaches the features
reversed too.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DomainAlignmentModule",
    "GradientReversal",
    "ImageDomainClassifier",
    "InstanceDomainClassifier",
    "check_domain_ids",
    "domain_consistency_loss",
    "grad_reverse",
    "image_domain_loss",
    "instance_domain_loss",
]


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return -ctx.weight * grad_output, None


def grad_reverse(x, weight=1.0):
    """Identity on `x` (any shape); the backward pass multiplies the incoming gradient by -weight."""
    return _GradReverse.apply(x, float(weight))


class GradientReversal(nn.Module):
    """Gradient reversal layer (GRL) with a fixed weight (the gradient is scaled by -weight)."""

    def __init__(self, weight=1.0):
        super().__init__()
        if weight < 0:
            raise ValueError(f"GradientReversal: weight must be >= 0 (the sign is reversed already), got {weight}")
        self.weight = float(weight)

    def forward(self, x):
        return grad_reverse(x, self.weight)

    def extra_repr(self):
        return f"weight={self.weight}"


class ImageDomainClassifier(nn.Module):
    """Image-level domain classifier: GRL, then 1x1 convs with ReLU, then a 1x1 conv to N logits.

    forward(features [B, C, H, W]) -> logits [B, N, H, W], one prediction per location.
    """

    def __init__(self, in_channels, num_domains, hidden_channels=(256,), grl_weight=1.0):
        super().__init__()
        self.grl = GradientReversal(grl_weight)
        layers, channels = [], in_channels
        for hidden in hidden_channels:
            layers += [nn.Conv2d(channels, hidden, kernel_size=1), nn.ReLU(inplace=True)]
            channels = hidden
        layers.append(nn.Conv2d(channels, num_domains, kernel_size=1))
        self.layers = nn.Sequential(*layers)
        self.num_domains = num_domains

    def forward(self, features):
        return self.layers(self.grl(features))


class InstanceDomainClassifier(nn.Module):
    """Instance-level domain classifier: GRL, then FC layers with ReLU and dropout, then N logits.

    forward(features [R, ...], flattened to [R, in_dim]) -> logits [R, N].
    """

    def __init__(self, in_dim, num_domains, hidden_dims=(256, 256), dropout=0.5, grl_weight=1.0):
        super().__init__()
        self.grl = GradientReversal(grl_weight)
        layers, dim = [], in_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            dim = hidden
        layers.append(nn.Linear(dim, num_domains))
        self.layers = nn.Sequential(*layers)
        self.num_domains = num_domains

    def forward(self, features):
        return self.layers(self.grl(features.flatten(1)))


def check_domain_ids(domains, num_domains, where):
    """Raise ValueError naming `where` when a domain id lies outside [0, num_domains)."""
    if domains.numel() and (int(domains.min()) < 0 or int(domains.max()) >= num_domains):
        raise ValueError(
            f"{where}: dataset ids {sorted(set(domains.tolist()))} do not fit a domain classifier of "
            f"{num_domains} classes; the classifier needs one class per training dataset (DATASETS.TRAIN)."
        )


def image_domain_loss(logits, domains):
    """Mean cross entropy over every location of every image.

    Args:
        logits: [B, N, H, W] image-level domain logits.
        domains: int64 [B], the dataset id of each image.
    Returns:
        scalar. 0 (still attached to `logits`) for B = 0.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    targets = domains.view(-1, 1, 1).expand(-1, logits.shape[2], logits.shape[3])
    return F.cross_entropy(logits, targets)


def instance_domain_loss(logits, domains):
    """Mean cross entropy over instances. logits [R, N], domains int64 [R] -> scalar (0 for R = 0)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, domains)


def domain_consistency_loss(image_logits, instance_logits, instance_image_index):
    """Consistency regulariser of DA-Faster (Eq. 10 there) for N classes:

        L_cst = mean over instances j of || mean_{u,v} p_img(i_j)^{(u,v)} - p_ins(j) ||_2,

    p = softmax over the N domains, i_j the image (row of `image_logits`) instance j comes from.

    Args:
        image_logits: [B, N, H, W].
        instance_logits: [R, N].
        instance_image_index: int64 [R], values in [0, B).
    Returns:
        scalar (0, attached to both inputs, for R = 0).
    """
    if instance_logits.shape[0] == 0:
        return image_logits.sum() * 0.0 + instance_logits.sum() * 0.0
    image_probs = F.softmax(image_logits, dim=1).mean(dim=(2, 3))
    instance_probs = F.softmax(instance_logits, dim=1)
    return (image_probs[instance_image_index] - instance_probs).norm(dim=1).mean()


class DomainAlignmentModule(nn.Module):
    """Image- and instance-level adversarial alignment of one feature pair (an IAM, Eq. 7).

    forward(image_features [B, C, H, W], image_domains int64 [B],
            instance_features [R, ...] (flattened to instance_dim), instance_image_index int64 [R])
        -> {"img": L_d_img, "ins": L_d_ins, "cst": L_d_cst} (scalars; their sum is L_adv).
    The instance domain is the domain of its image.
    """

    def __init__(self, image_channels, instance_dim, num_domains, grl_weight=1.0,
                 image_hidden=(256,), instance_hidden=(256, 256), dropout=0.5):
        super().__init__()
        if num_domains < 2:
            raise ValueError(f"DomainAlignmentModule: needs at least 2 domains (datasets), got {num_domains}")
        self.image_classifier = ImageDomainClassifier(image_channels, num_domains, image_hidden, grl_weight)
        self.instance_classifier = InstanceDomainClassifier(
            instance_dim, num_domains, instance_hidden, dropout, grl_weight
        )
        self.num_domains = num_domains

    def forward(self, image_features, image_domains, instance_features, instance_image_index):
        check_domain_ids(image_domains, self.num_domains, type(self).__name__)
        image_logits = self.image_classifier(image_features)
        instance_logits = self.instance_classifier(instance_features)
        return {
            "img": image_domain_loss(image_logits, image_domains),
            "ins": instance_domain_loss(instance_logits, image_domains[instance_image_index]),
            "cst": domain_consistency_loss(image_logits, instance_logits, instance_image_index),
        }
