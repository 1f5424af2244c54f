"""Gram matrices, content, style and total-variation losses against hand computation, in all three conventions.

The expected values are written out with explicit loops over tiny integer tensors, straight from the formulas in
NOTES.md §2, so that a wrong constant (b·c·h·w vs c·h·w, 4 vs 2, ½ missing, mean vs sum) fails.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import nstutil
from nstutil import NSTError, content_loss, fast, gram_matrix, style_loss, total_variation_loss

CONVENTIONS = ("tutorial", "coursera", "gatys")

# 1×2×2×3 feature maps with small integer values (C=2, H=2, W=3, so M = H·W = 6).
F_GEN = torch.tensor([[[[1., 2., 0.], [3., -1., 2.]],
                       [[0., 1., 4.], [2., 2., -3.]]]])
F_TGT = torch.tensor([[[[2., 0., 1.], [1., 1., 1.]],
                       [[-1., 3., 2.], [0., 2., 1.]]]])


def hand_gram(f, normalise):
    """G[i][j] = Σ_p F[i,p]·F[j,p]; the tutorial divides by b·c·h·w (b = 1)."""
    b, c, h, w = f.shape
    assert b == 1
    g = [[0.0] * c for _ in range(c)]
    for i in range(c):
        for j in range(c):
            s = 0.0
            for y in range(h):
                for x in range(w):
                    s += float(f[0, i, y, x]) * float(f[0, j, y, x])
            g[i][j] = s / (b * c * h * w) if normalise else s
    return g


def hand_content(gen, tgt, convention):
    _, c, h, w = gen.shape
    total = 0.0
    for k in range(c):
        for y in range(h):
            for x in range(w):
                total += (float(gen[0, k, y, x]) - float(tgt[0, k, y, x])) ** 2
    if convention == "tutorial":
        return total / (c * h * w)  # mean squared error
    if convention == "coursera":
        return total / (4 * h * w * c)  # Σ(a_C − a_G)² / (4·nH·nW·nC)
    return 0.5 * total  # Gatys: ½ Σ (F − P)²


def hand_style(gen, tgt, convention):
    _, c, h, w = gen.shape
    normalise = convention == "tutorial"
    g, a = hand_gram(gen, normalise), hand_gram(tgt, normalise)
    total = 0.0
    for i in range(c):
        for j in range(c):
            total += (g[i][j] - a[i][j]) ** 2
    if convention == "tutorial":
        return total / (c * c)  # mean over the C² entries
    m = h * w
    return total / (4 * c ** 2 * m ** 2)  # Σ (G − A)² / (4 N² M²), the same for coursera and gatys


def test_conventions_are_the_three_named():
    assert tuple(nstutil.CONVENTIONS) == CONVENTIONS


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gram_matrix_by_hand(convention):
    got = gram_matrix(F_GEN, convention)
    assert got.shape == (1, 2, 2)
    expected = torch.tensor(hand_gram(F_GEN, convention == "tutorial")).unsqueeze(0)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_gram_matrix_known_numbers():
    # Written out once in full: channel 0 = (1,2,0,3,-1,2), channel 1 = (0,1,4,2,2,-3).
    # <c0,c0> = 1+4+0+9+1+4 = 19; <c0,c1> = 0+2+0+6-2-6 = 0; <c1,c1> = 0+1+16+4+4+9 = 34.
    torch.testing.assert_close(gram_matrix(F_GEN, "gatys")[0], torch.tensor([[19., 0.], [0., 34.]]))
    torch.testing.assert_close(gram_matrix(F_GEN, "coursera")[0], torch.tensor([[19., 0.], [0., 34.]]))
    torch.testing.assert_close(gram_matrix(F_GEN, "tutorial")[0], torch.tensor([[19., 0.], [0., 34.]]) / 12)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gram_matrix_batch_is_per_image(convention):
    batch = torch.cat([F_GEN, F_TGT])
    got = gram_matrix(batch, convention)
    assert got.shape == (2, 2, 2)
    torch.testing.assert_close(got[0], gram_matrix(F_GEN, convention)[0])
    torch.testing.assert_close(got[1], gram_matrix(F_TGT, convention)[0])


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gram_matrix_channels_last_same_values(convention):
    g = torch.Generator().manual_seed(3)
    f = torch.randn(1, 5, 4, 3, generator=g)
    cl = f.contiguous(memory_format=torch.channels_last)
    assert not cl.is_contiguous()
    torch.testing.assert_close(gram_matrix(cl, convention), gram_matrix(f, convention), rtol=1e-5, atol=1e-6)
    expected = torch.tensor(hand_gram(f, convention == "tutorial")).unsqueeze(0)
    torch.testing.assert_close(gram_matrix(cl, convention), expected, rtol=1e-5, atol=1e-5)


def plain_style_loss(f, a_features, convention):
    """The style loss by the plain matrix-product formula (NOTES.md §2), in whatever dtype it is given."""
    _, c, h, w = f.shape
    flat, a_flat = f.reshape(c, h * w), a_features.reshape(c, -1)
    gram, target = flat @ flat.T, a_flat @ a_flat.T
    if convention == "tutorial":
        gram, target = gram / (c * h * w), target / a_flat.numel()
        return ((gram - target) ** 2).mean()
    return ((gram - target) ** 2).sum() / (4 * c ** 2 * (h * w) ** 2)


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_matrix_float32_matches_float64_matrix_product(layout, grad):
    # float32 on the CPU goes through the convolution library (without autograd) or the matrix product (with it).
    f = torch.randn(1, 24, 17, 13, generator=torch.Generator().manual_seed(4))
    expected = f.double().reshape(24, -1) @ f.double().reshape(24, -1).T
    got = gram_matrix(f.contiguous(memory_format=layout).requires_grad_(grad), "gatys")
    torch.testing.assert_close(got[0].double(), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_style_loss_fast_path_matches_plain_formula_in_float64(convention, layout):
    """The float32 fast path (hand-written backward; on the CPU its products as convolutions) against autograd
    through the plain formula in float64: same loss, same gradient."""
    g = torch.Generator().manual_seed(5)
    f = torch.randn(1, 16, 12, 10, generator=g)
    s = torch.randn(1, 16, 9, 11, generator=g)
    x = f.clone(memory_format=layout).requires_grad_(True)
    loss = style_loss(x, gram_matrix(s, convention), convention)
    loss.backward()
    ref_x = f.double().requires_grad_(True)
    ref = plain_style_loss(ref_x, s.double(), convention)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(x.grad.double(), ref_x.grad, rtol=1e-4, atol=1e-6 * ref_x.grad.abs().max().item())


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_content_loss_by_hand(convention):
    got = content_loss(F_GEN, F_TGT, convention)
    assert got.dim() == 0
    assert got.item() == pytest.approx(hand_content(F_GEN, F_TGT, convention), rel=1e-6)


def test_content_loss_known_numbers():
    # Differences: c0 = (-1,2,-1,2,-2,1) → 15; c1 = (1,-2,2,2,0,-4) → 29; Σ = 44 over 12 entries.
    assert content_loss(F_GEN, F_TGT, "tutorial").item() == pytest.approx(44 / 12)
    assert content_loss(F_GEN, F_TGT, "coursera").item() == pytest.approx(44 / (4 * 2 * 3 * 2))
    assert content_loss(F_GEN, F_TGT, "gatys").item() == pytest.approx(22.0)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_style_loss_by_hand_feature_map_target(convention):
    got = style_loss(F_GEN, F_TGT, convention)
    assert got.dim() == 0
    assert got.item() == pytest.approx(hand_style(F_GEN, F_TGT, convention), rel=1e-6)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_style_loss_by_hand_gram_target(convention):
    target_gram = gram_matrix(F_TGT, convention)
    assert target_gram.dim() == 3
    got = style_loss(F_GEN, target_gram, convention)
    assert got.item() == pytest.approx(hand_style(F_GEN, F_TGT, convention), rel=1e-6)
    # A hand-written Gram (a plain C×C list made into a B×C×C tensor) works the same.
    hand = torch.tensor(hand_gram(F_TGT, convention == "tutorial")).unsqueeze(0)
    assert style_loss(F_GEN, hand, convention).item() == pytest.approx(hand_style(F_GEN, F_TGT, convention),
                                                                       rel=1e-6)


def test_style_loss_known_numbers():
    # Target Gram: t0 = (2,0,1,1,1,1), t1 = (-1,3,2,0,2,1): <t0,t0> = 8, <t0,t1> = 3, <t1,t1> = 19.
    # G − A = [[11, -3], [-3, 15]]: Σ squares = 121 + 9 + 9 + 225 = 364.
    assert style_loss(F_GEN, F_TGT, "gatys").item() == pytest.approx(364 / (4 * 4 * 36))
    assert style_loss(F_GEN, F_TGT, "coursera").item() == pytest.approx(364 / (4 * 4 * 36))
    assert style_loss(F_GEN, F_TGT, "tutorial").item() == pytest.approx(364 / 144 / 4)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_style_target_of_another_size(convention):
    """The style image may have another size: its Gram is taken over its own positions."""
    g = torch.Generator().manual_seed(5)
    gen = torch.randn(1, 3, 2, 3, generator=g)
    tgt = torch.randn(1, 3, 4, 2, generator=g)
    normalise = convention == "tutorial"
    G, A = hand_gram(gen, normalise), hand_gram(tgt, normalise)
    total = sum((G[i][j] - A[i][j]) ** 2 for i, j in itertools.product(range(3), range(3)))
    expected = total / 9 if convention == "tutorial" else total / (4 * 9 * 36)
    assert style_loss(gen, tgt, convention).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_losses_vanish_at_the_target(convention):
    assert content_loss(F_GEN, F_GEN.clone(), convention).item() == 0.0
    assert style_loss(F_GEN, F_GEN.clone(), convention).item() == 0.0
    # The style loss ignores where features are: shuffled positions keep the Gram.
    shuffled = F_GEN.reshape(1, 2, 6)[..., torch.tensor([5, 3, 1, 0, 2, 4])].reshape(1, 2, 2, 3)
    assert style_loss(shuffled, F_GEN, convention).item() == pytest.approx(0.0, abs=1e-6)
    assert content_loss(shuffled, F_GEN, convention).item() > 0


def hand_tv(img, p):
    _, c, h, w = img.shape
    dx = [abs(float(img[0, k, y, x + 1]) - float(img[0, k, y, x])) ** p
          for k in range(c) for y in range(h) for x in range(w - 1)]
    dy = [abs(float(img[0, k, y + 1, x]) - float(img[0, k, y, x])) ** p
          for k in range(c) for y in range(h - 1) for x in range(w)]
    return sum(dx) / len(dx) + sum(dy) / len(dy)


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_total_variation_by_hand(p):
    assert total_variation_loss(F_GEN, p=p).item() == pytest.approx(hand_tv(F_GEN, p), rel=1e-6)


def test_total_variation_known_numbers():
    img = torch.tensor([[[[0., 1., 3.], [2., 2., 2.]]]])  # 1×1×2×3
    # dx: (1, 2), (0, 0) → squares 1, 4, 0, 0 → mean 5/4; dy: (2, 1, -1) → squares 4, 1, 1 → mean 2.
    assert total_variation_loss(img).item() == pytest.approx(5 / 4 + 2)
    # p = 1: mean|dx| = 3/4, mean|dy| = 4/3.
    assert total_variation_loss(img, p=1).item() == pytest.approx(3 / 4 + 4 / 3)
    assert total_variation_loss(torch.full((1, 3, 4, 5), 0.3)).item() == 0.0


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gradcheck_gram(convention):
    g = torch.Generator().manual_seed(11)
    f = torch.randn(1, 3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gram_matrix(t, convention), (f,))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gradcheck_content_loss(convention):
    g = torch.Generator().manual_seed(12)
    f = torch.randn(1, 3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.randn(1, 3, 2, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: content_loss(t, p, convention), (f,))


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("target_kind", ["features", "gram"])
def test_gradcheck_style_loss(convention, target_kind):
    g = torch.Generator().manual_seed(13)
    f = torch.randn(1, 3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.randn(1, 3, 3, 2, generator=g, dtype=torch.float64)
    target = s if target_kind == "features" else gram_matrix(s, convention)
    assert torch.autograd.gradcheck(lambda t: style_loss(t, target, convention), (f,))


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_gradcheck_total_variation(p):
    g = torch.Generator().manual_seed(14)
    # Distinct values, so that no difference sits at the kink of |·| for p = 1.
    x = torch.randperm(24, generator=g).to(torch.float64).reshape(1, 2, 3, 4).div(7).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: total_variation_loss(t, p=p), (x,))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_content_loss_gradient_by_hand(convention):
    """The analytic gradient too: d/dF of each convention's content loss is a known multiple of (F − P)."""
    f = F_GEN.clone().double().requires_grad_(True)
    content_loss(f, F_TGT.double(), convention).backward()
    n = F_GEN.numel()
    factor = {"tutorial": 2 / n, "coursera": 2 / (4 * n), "gatys": 1.0}[convention]
    torch.testing.assert_close(f.grad, factor * (F_GEN - F_TGT).double())


def test_unknown_convention_is_an_error():
    for call in (lambda: gram_matrix(F_GEN, "keras"), lambda: content_loss(F_GEN, F_TGT, "keras"),
                 lambda: style_loss(F_GEN, F_TGT, "keras")):
        with pytest.raises(NSTError, match="keras") as info:
            call()
        assert "tutorial" in str(info.value) and "gatys" in str(info.value)


def test_shape_errors():
    with pytest.raises(NSTError):
        gram_matrix(torch.zeros(2, 3, 4))
    with pytest.raises(NSTError, match="same size"):
        content_loss(F_GEN, torch.zeros(1, 2, 3, 3))
    with pytest.raises(NSTError, match="channels"):
        style_loss(F_GEN, torch.zeros(1, 3, 2, 3))
    with pytest.raises(NSTError):
        total_variation_loss(torch.zeros(3, 4, 4))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gradcheck_style_loss_both_inputs(convention):
    """Gradients flow to a target that takes gradients too (both arguments checked)."""
    g = torch.Generator().manual_seed(15)
    f = torch.randn(1, 3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.randn(1, 3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: style_loss(a, b, convention), (f, s))
    gram = gram_matrix(s.detach(), convention).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: style_loss(a, b, convention), (f, gram))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_style_loss_gradient_channels_last(convention):
    """Channels-last feature maps (as style_transfer uses them) give the same loss and gradient."""
    g = torch.Generator().manual_seed(16)
    f = torch.randn(1, 4, 3, 5, generator=g, dtype=torch.float64)
    target = gram_matrix(torch.randn(1, 4, 5, 3, generator=g, dtype=torch.float64), convention)
    grads, losses = [], []
    for layout in (torch.contiguous_format, torch.channels_last):
        x = f.clone().contiguous(memory_format=layout).requires_grad_(True)
        loss = style_loss(x, target, convention)
        loss.backward()
        losses.append(loss.item())
        grads.append(x.grad.contiguous())
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
    torch.testing.assert_close(grads[0], grads[1])
    x = f.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: style_loss(t, target, convention), (x,))


def _through_a_layer(features, loss, downstream):
    """A stand-in for the rest of the network: a loss term downstream of ``features`` plus ``loss``."""
    return (features.relu() * downstream).sum() + 3.0 * loss


@pytest.mark.parametrize("by_convolution", [False, True])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kind", ["content", "style"])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_losses_in_pass_match_a_separate_branch(monkeypatch, convention, kind, layout, by_convolution):
    """Attached to the pass (one fused backward step) or computed on a branch of their own (autograd adds the two
    gradients): the same loss, the same features carried on, the same gradient (float32 against float64)."""
    monkeypatch.setattr(fast, "_PRODUCT_PATHS", {})
    monkeypatch.setattr(fast, "_convolution_is_faster", lambda features, product: by_convolution)
    g = torch.Generator().manual_seed(21)
    f = torch.randn(1, 6, 5, 7, generator=g)
    downstream = torch.randn(1, 6, 5, 7, generator=g)
    if kind == "content":
        target = torch.randn(1, 6, 5, 7, generator=g)
        branch, in_pass = content_loss, fast.content_loss_in_pass
    else:
        target = gram_matrix(torch.randn(1, 6, 4, 4, generator=g), convention)
        branch, in_pass = style_loss, fast.style_loss_in_pass
    x = f.clone(memory_format=layout).requires_grad_(True)
    features, loss = in_pass(x, target, convention)
    assert torch.equal(features, x) and features.stride() == x.stride()
    _through_a_layer(features, loss, downstream).backward()
    ref_x = f.double().requires_grad_(True)
    ref_loss = branch(ref_x, target.double(), convention)
    _through_a_layer(ref_x, ref_loss, downstream.double()).backward()
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    torch.testing.assert_close(x.grad.double(), ref_x.grad, rtol=1e-4, atol=1e-6 * ref_x.grad.abs().max().item())


@pytest.mark.parametrize("kind", ["content", "style"])
def test_losses_in_pass_alone_or_features_alone(kind):
    """Only the loss used, or only the features carried on: each gets exactly its own gradient."""
    g = torch.Generator().manual_seed(22)
    f = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)
    target = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)
    if kind == "style":
        target = gram_matrix(target, "gatys")
    in_pass = fast.content_loss_in_pass if kind == "content" else fast.style_loss_in_pass
    branch = content_loss if kind == "content" else style_loss
    assert torch.autograd.gradcheck(lambda t: in_pass(t, target, "gatys")[1], (f.clone().requires_grad_(True),))
    x = f.clone().requires_grad_(True)
    in_pass(x, target, "gatys")[0].sum().backward()
    assert torch.equal(x.grad, torch.ones_like(f))
    x = f.clone().requires_grad_(True)
    in_pass(x, target, "gatys")[1].backward()
    ref = f.clone().requires_grad_(True)
    branch(ref, target, "gatys").backward()
    torch.testing.assert_close(x.grad, ref.grad)


def test_features_from_the_pass_cannot_be_changed_in_place():
    """The loss's backward needs the features as they were: autograd refuses an in-place change afterwards."""
    x = torch.randn(1, 3, 4, 4).requires_grad_(True)
    features, loss = fast.style_loss_in_pass(x * 1.0, gram_matrix(torch.randn(1, 3, 4, 4)), "tutorial")
    features.relu_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (features.sum() + loss).backward()


def test_style_loss_in_pass_wants_the_layers_gram():
    with pytest.raises(NSTError, match="4 and 5 channels"):
        fast.style_loss_in_pass(torch.randn(1, 4, 3, 3), torch.randn(1, 5, 5), "tutorial")
    with pytest.raises(NSTError, match="shapes"):
        fast.content_loss_in_pass(torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 2), "tutorial")


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_the_engines_fast_paths_compute_the_lessons_formulas(convention, layout):
    """nstutil.fast (what the engine runs) against nstutil.losses (what the lessons teach), float64, batches and
    masks included: same values, same gradients."""
    g = torch.Generator().manual_seed(23)
    f = torch.randn(3, 5, 6, 4, generator=g, dtype=torch.float64).contiguous(memory_format=layout)
    target = gram_matrix(torch.randn(1, 5, 7, 7, generator=g, dtype=torch.float64), convention)
    mask = torch.rand(1, 1, 6, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fast.gram(f, convention), gram_matrix(f, convention))
    for kwargs in ({}, {"mask": mask}):
        x, y = f.clone().requires_grad_(True), f.clone().requires_grad_(True)
        want, got = style_loss(x, target, convention, **kwargs), fast.style_loss(y, target, convention, **kwargs)
        assert got.item() == pytest.approx(want.item(), rel=1e-12)
        want.backward()
        got.backward()
        torch.testing.assert_close(y.grad, x.grad)
