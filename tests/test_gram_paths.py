"""The two ways nstutil computes Gram products on the CPU (oneDNN convolution or matrix product), and the one-off
timing that picks between them per shape. Values are checked against float64; the choice's logic is checked with a
fake clock, never by timing."""

from __future__ import annotations

import itertools

import pytest
import torch

from nstutil import fast
from nstutil.fast import gram as gram_matrix, style_loss

LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.fixture
def fresh_choices(monkeypatch):
    """An empty choice cache for the test, the process's own restored after it."""
    monkeypatch.setattr(fast, "_PRODUCT_PATHS", {})
    return fast._PRODUCT_PATHS


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("by_convolution", [True, False])
def test_both_paths_give_the_float64_products(layout, by_convolution):
    g = torch.Generator().manual_seed(21)
    f = torch.randn(1, 24, 17, 13, generator=g)
    d = torch.randn(1, 24, 24, generator=g, dtype=torch.float64)
    d = d + d.transpose(1, 2)
    x = f.contiguous(memory_format=layout)
    flat = f.double().reshape(24, -1)
    gram = fast._gram_product(x, by_convolution)
    torch.testing.assert_close(gram[0].double(), flat @ flat.T, rtol=1e-5, atol=1e-4)
    applied = fast._apply_product(x, d.float(), by_convolution)
    assert applied.shape == f.shape
    torch.testing.assert_close(applied.double().reshape(24, -1), d[0] @ flat, rtol=1e-5, atol=1e-4)


def test_choice_is_made_once_per_shape_product_and_layout(fresh_choices, monkeypatch):
    timed = []

    def fake_timing(features, product):
        timed.append((product, tuple(features.shape), features.is_contiguous()))
        return product == "gram"

    monkeypatch.setattr(fast, "_convolution_is_faster", fake_timing)
    f = torch.randn(1, 8, 6, 5)
    for _ in range(3):
        gram_matrix(f)
    assert timed == [("gram", (1, 8, 6, 5), True)]
    gram_matrix(f.contiguous(memory_format=torch.channels_last))
    gram_matrix(torch.randn(1, 8, 5, 6))
    x = f.clone().requires_grad_(True)
    style_loss(x, gram_matrix(torch.randn(1, 8, 4, 4))).backward()
    style_loss(x, gram_matrix(torch.randn(1, 8, 4, 4))).backward()
    assert timed[1:] == [("gram", (1, 8, 6, 5), False), ("gram", (1, 8, 5, 6), True), ("gram", (1, 8, 4, 4), True),
                         ("apply", (1, 8, 6, 5), True)]
    assert fresh_choices[("apply", 8, 6, 5, False, torch.get_num_threads())] is False


@pytest.mark.parametrize("choice", [True, False])
def test_the_chosen_path_is_the_one_used(fresh_choices, monkeypatch, choice):
    used = []
    real_gram, real_apply = fast._gram_product, fast._apply_product
    monkeypatch.setattr(fast, "_convolution_is_faster", lambda features, product: choice)
    monkeypatch.setattr(fast, "_gram_product", lambda f, by: used.append(("gram", by)) or real_gram(f, by))
    monkeypatch.setattr(fast, "_apply_product",
                        lambda f, d, by, add_to=None: used.append(("apply", by)) or real_apply(f, d, by, add_to))
    x = torch.randn(1, 4, 5, 5).requires_grad_(True)
    style_loss(x, gram_matrix(torch.randn(1, 4, 3, 3), "gatys"), "gatys").backward()
    assert used == [("gram", choice), ("gram", choice), ("apply", choice)]


def test_no_timing_off_the_float32_cpu_path(fresh_choices, monkeypatch):
    monkeypatch.setattr(fast, "_convolution_is_faster", pytest.fail)
    gram_matrix(torch.randn(1, 3, 4, 4, dtype=torch.float64))
    gram_matrix(torch.randn(2, 3, 4, 4))                    # a batch: the convolution trick is for one image
    assert fresh_choices == {}


def _clock(durations):
    """A fake perf_counter: each start/stop pair of calls is ``durations`` apart, in turn."""
    ticks = itertools.count()
    steps = itertools.cycle(durations)
    now = [0.0]

    def perf_counter():
        if next(ticks) % 2:
            now[0] += next(steps)
        return now[0]
    return perf_counter


@pytest.mark.parametrize("conv, matmul, expected", [(1.0, 2.0, True), (2.0, 1.0, False), (0.85, 1.0, False)])
def test_timing_keeps_the_matrix_product_unless_the_convolution_is_clearly_faster(monkeypatch, conv, matmul,
                                                                                 expected):
    # Turns alternate convolution, matrix product; a slow first (warm-up) round must not count.
    durations = [100.0, 100.0] + [conv, matmul] * fast._TIMING_ROUNDS
    monkeypatch.setattr(fast, "perf_counter", _clock(durations))
    assert fast._convolution_is_faster(torch.randn(1, 4, 3, 3), "gram") is expected
    monkeypatch.setattr(fast, "perf_counter", _clock(durations))
    assert fast._convolution_is_faster(torch.randn(1, 4, 3, 3), "apply") is expected


def test_timing_uses_a_bounded_slice(monkeypatch):
    seen = []
    monkeypatch.setattr(fast, "_gram_product", lambda f, by: seen.append(tuple(f.shape)))
    big = torch.empty(1, 2, 1000, 100).contiguous(memory_format=torch.channels_last)
    fast._convolution_is_faster(big, "gram")
    assert set(seen) == {(1, 2, fast._TIMING_POSITIONS // 100, 100)}
