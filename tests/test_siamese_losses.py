"""The metric-learning losses, the verification head and the verification / one-shot metrics on
small tensors whose values are worked out by hand in each test."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.losses.metric_learning import (batch_all_triplet_loss, batch_hard_triplet_loss, contrastive_loss,
                                        mined_triplet_loss, pair_bce_loss, pairwise_squared_distances,
                                        semi_hard_triplet_loss, triplet_loss)
from zoo.tasks.metric_learning import (OneShotAccuracy, TrueAcceptRate, VerificationAccuracy, VerificationAUROC,
                                       VerificationEER, best_threshold, one_shot_episodes, verification_pairs)

# Four 1-d embeddings, two identities: x = [0, 2 | 1, 5], labels [0, 0 | 1, 1]. Squared distances:
#   d01 = 4, d02 = 1, d03 = 25, d12 = 1, d13 = 9, d23 = 16
X = torch.tensor([[0.0], [2.0], [1.0], [5.0]])
Y = torch.tensor([0, 0, 1, 1])


def test_pairwise_squared_distances():
    d = pairwise_squared_distances(X)
    assert d.tolist() == [[0, 4, 1, 25], [4, 0, 1, 9], [1, 1, 0, 16], [25, 9, 16, 0]]


def test_triplet_loss_on_given_triplets():
    # a=(0,0), p=(1,0): d_ap = 1. n=(0,2): d_an = 4 -> max(1 - 4 + 0.2, 0) = 0;
    # n=(0.5,0): d_an = 0.25 -> 1 - 0.25 + 0.2 = 0.95. Mean: 0.475.
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    n = torch.tensor([[0.0, 2.0], [0.5, 0.0]])
    assert triplet_loss(a, p, n, margin=0.2).item() == pytest.approx(0.475)


def test_batch_hard_mining():
    # margin 0.5; each anchor: farthest positive, nearest negative
    # a0: 4 - min(1, 25) + .5 = 3.5;  a1: 4 - min(1, 9) + .5 = 3.5
    # a2: 16 - min(1, 1) + .5 = 15.5; a3: 16 - min(25, 9) + .5 = 7.5   -> mean 30 / 4 = 7.5
    assert batch_hard_triplet_loss(X, Y, margin=0.5).item() == pytest.approx(7.5)


def test_semi_hard_mining():
    # each (anchor, positive) with the nearest negative farther than the positive, else the farthest one
    # (0,1): d_ap 4, negatives {1, 25} -> 25: 4 - 25 + .5 < 0 -> 0
    # (1,0): d_ap 4, negatives {1, 9}  -> 9:  4 - 9 + .5 < 0  -> 0
    # (2,3): d_ap 16, negatives {1, 1}: none farther -> the farthest, 1: 16 - 1 + .5 = 15.5
    # (3,2): d_ap 16, negatives {25, 9} -> 25: 16 - 25 + .5 < 0 -> 0        -> mean 15.5 / 4
    assert semi_hard_triplet_loss(X, Y, margin=0.5).item() == pytest.approx(3.875)


def test_batch_all_averages_the_active_triplets():
    # active (a, p, n): (0,1,2) 3.5, (1,0,2) 3.5, (2,3,0) 15.5, (2,3,1) 15.5, (3,2,1) 16 - 9 + .5 = 7.5
    # (the other three are <= 0)  -> 45.5 / 5 = 9.1
    assert batch_all_triplet_loss(X, Y, margin=0.5).item() == pytest.approx(9.1)
    assert mined_triplet_loss(X, Y, 0.5, "batch_all").item() == pytest.approx(9.1)
    with pytest.raises(ValueError, match="mining must be one of batch_hard, semi_hard, batch_all"):
        mined_triplet_loss(X, Y, 0.5, "hardest")


def test_contrastive_loss():
    # margin 3, Euclidean distances. Same pairs: (0,1) d=2 -> 4/2 = 2; (2,3) d=4 -> 16/2 = 8: mean 5.
    # Different: (0,2) d=1 -> (3-1)^2/2 = 2; (0,3) d=5 -> 0; (1,2) d=1 -> 2; (1,3) d=3 -> 0: mean 1.
    # Half each: (5 + 1) / 2 = 3
    assert contrastive_loss(X, Y, margin=3.0).item() == pytest.approx(3.0, abs=1e-5)


def test_pair_bce_loss():
    # logit ln 3, same: -log(sigmoid(ln 3)) = -log(3/4); logit 0, different: -log(1/2). Half each.
    loss = pair_bce_loss(torch.tensor([math.log(3.0), 0.0]), torch.tensor([1, 0]))
    assert loss.item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2)


def test_a_batch_without_positives_gives_a_zero_on_the_graph():
    x = torch.randn(3, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 2])
    for fn in (batch_hard_triplet_loss, semi_hard_triplet_loss, batch_all_triplet_loss):
        loss = fn(x, labels)
        assert loss.item() == 0.0
        loss.backward()  # connected: no error
    with pytest.raises(ValueError, match="labels must be"):
        batch_hard_triplet_loss(x, torch.tensor([0, 1]))


def test_losses_have_gradients():
    x = torch.nn.functional.normalize(torch.randn(8, 5), dim=1).requires_grad_()
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for fn in (batch_hard_triplet_loss, semi_hard_triplet_loss, batch_all_triplet_loss, contrastive_loss):
        x.grad = None
        fn(x, labels, margin=1.0).backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, fn.__name__


def test_verification_head_equation():
    # w = (1, -2), b = 0.5; |(1, 0) - (0, 3)| = (1, 3): 1*1 - 2*3 + 0.5 = -4.5
    head = zoo.create_model("verification_head", embedding_dim=2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([1.0, -2.0]))
        head.bias.fill_(0.5)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    assert head(a, b).tolist() == [-4.5]
    assert head(torch.stack([a, b], dim=1)).tolist() == [-4.5]  # pairs stacked (B, 2, D)
    with pytest.raises(ValueError, match="embedding_dim"):
        head(torch.zeros(1, 3), torch.zeros(1, 3))


def test_encoders_give_unit_embeddings():
    for name, shape in (("siamese_digits", (1, 28, 28)), ("siamese_faces", (3, 64, 64))):
        net = zoo.create_model(name).eval()
        emb = net(torch.randn(3, *shape))
        assert emb.shape == (3, net.embedding_dim)
        assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)


# -- metrics ---------------------------------------------------------------------------------------

def test_best_threshold_by_hand():
    # scores 0.9 (same), 0.8 (diff), 0.7 (same), 0.1 (diff): accepting the top 3 gets 3 of 4 right
    # (only 0.8 wrong); the top 1 also gets 3 right; the first best (top 1) wins: threshold (0.9+0.8)/2
    acc, thr = best_threshold(torch.tensor([0.9, 0.8, 0.7, 0.1]), torch.tensor([1, 0, 1, 0]))
    assert acc == 0.75 and thr == pytest.approx(0.85)
    # a tie is never split: 0.5 (same) and 0.5 (diff) are accepted together or not at all
    acc, _ = best_threshold(torch.tensor([0.5, 0.5, 0.1]), torch.tensor([1, 0, 0]))
    assert acc == pytest.approx(2 / 3)
    # perfectly separated: every decision right
    assert best_threshold(torch.tensor([3.0, 2.0, -1.0]), torch.tensor([1, 1, 0]))[0] == 1.0


def test_pairs_and_episodes_are_valid_balanced_and_seeded():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    i, j, same = verification_pairs(labels, 200, seed=3)
    assert len(i) == 400 and int(same.sum()) == 200
    assert torch.equal(labels[i] == labels[j], same) and bool((i != j).all())
    i2, j2, _ = verification_pairs(labels, 200, seed=3)
    assert torch.equal(i, i2) and torch.equal(j, j2)
    support, query, answer = one_shot_episodes(labels, 3, 100, seed=1)
    e = torch.arange(100)
    assert torch.equal(labels[support[e, answer]], labels[query])  # the right support shares the class
    assert bool((support[e, answer] != query).all())  # ... and is another example
    assert all(len(set(labels[row].tolist())) == 3 for row in support)  # 3 distinct classes
    assert 3 not in labels[support].tolist()  # class 3 has one example: never used
    assert one_shot_episodes(labels, 4, 10) is None  # only 3 classes have two examples


def test_metrics_on_separated_and_on_overlapping_embeddings():
    # Two classes far apart on a line: every metric perfect
    emb = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    for metric, want in ((VerificationAUROC(num_pairs=50), 1.0), (VerificationAccuracy(num_pairs=50), 1.0),
                         (VerificationEER(num_pairs=50), 0.0), (TrueAcceptRate(num_pairs=50, far=0.01), 1.0),
                         (OneShotAccuracy(n_way=2, episodes=50), 1.0)):
        metric.update(emb, labels)
        assert metric.compute().item() == pytest.approx(want), type(metric).__name__
    # Every embedding the same: every pair scores the same -> AUC one half, accuracy one half
    flat = torch.zeros(6, 2)
    auc, acc = VerificationAUROC(num_pairs=50), VerificationAccuracy(num_pairs=50)
    for m in (auc, acc):
        m.update(flat, labels)
    assert auc.compute().item() == pytest.approx(0.5) and acc.compute().item() == pytest.approx(0.5)


def test_one_shot_counts_the_nearest_support():
    # class 0 at 0 and 0.4, class 1 at 1 and 10: a query 0.4 with support 0 (class 0) and 1 (class 1)
    # is right; a query 10 with supports 0/0.4 and 1 is nearest class 1 -> right; query 1 with support
    # 10 (class 1) against 0 or 0.4 (class 0): nearer class 0 -> wrong. So accuracy is the share of
    # episodes whose support of class 1 is 10 and whose query is 1.
    emb = torch.tensor([[0.0], [0.4], [1.0], [10.0]])
    labels = torch.tensor([0, 0, 1, 1])
    metric = OneShotAccuracy(n_way=2, episodes=400, seed=0)
    metric.update(emb, labels)
    support, query, answer = one_shot_episodes(labels, 2, 400, seed=0)
    wrong = (query == 2).float().mean().item()  # query 1.0 always has support 10.0 for its class
    assert metric.compute().item() == pytest.approx(1 - wrong)
