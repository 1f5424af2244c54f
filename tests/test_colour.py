"""Colour preservation (nstutil.colour): YIQ against published matrices, the chrominance guarantee of
combine_luminance, luminance matching, and colour histogram matching against float64 statistics.

Images are small and seeded. Statistics are recomputed here in float64 numpy, straight from the definitions, and the
three histogram modes are told apart by the shape of the linear map each must produce (recovered from the output by
least squares), so that a mode computed with the wrong square root fails even when its statistics still match.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nstutil import NSTError
from nstutil.colour import (HISTOGRAM_MODES, PRESERVE_COLORS, combine_luminance, grey, luminance, match_histogram,
                            match_luminance, rgb_to_yiq, yiq_to_rgb)

# GNU Octave's rgb2ntsc reference matrix (documented there, "truncated to 3 significant figures"; it is not
# exactly scikit-image's matrix rounded, so the two agree to 0.001, not 0.0005).
OCTAVE_NTSC = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]])

CUBE_CORNERS = torch.tensor([[r, g, b] for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)])


def pixels_image(pixels: torch.Tensor, width: int) -> torch.Tensor:
    """P×3 colours as a 1×3×(P/width)×width image."""
    return pixels.T.reshape(1, 3, -1, width).contiguous()


def colourful(seed: int, height: int = 24, width: int = 20) -> torch.Tensor:
    """A seeded image whose channels are correlated (off-diagonal covariance) and unequal in spread; the mixing and
    the mean colour depend on the seed too, so two seeds give different colour statistics."""
    g = torch.Generator().manual_seed(seed)
    mixing = 0.4 * torch.rand(3, 3, generator=g) + 0.3 * torch.eye(3)
    offset = 0.5 * torch.rand(3, 1, 1, generator=g)
    noise = torch.rand(1, 3, height, width, generator=g) - 0.5
    return (torch.einsum("kc,nchw->nkhw", mixing, noise) + 0.25 + offset).clamp(0, 1)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Same shape and every element within atol (torch.testing.assert_close's first call costs seconds here)."""
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() <= atol


def stats64(image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour and colour covariance (dividing by the number of pixels) of a 1×3×H×W image, in float64."""
    x = image[0].detach().double().numpy().reshape(3, -1)
    mean = x.mean(axis=1)
    d = x - mean[:, None]
    return mean, d @ d.T / x.shape[1]


def sqrt_psd(c: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(c)
    return vectors @ np.diag(np.sqrt(values)) @ vectors.T


def recovered_map(style: torch.Tensor, matched: torch.Tensor) -> np.ndarray:
    """The 3×3 A with matched - mean(matched) = A (style - mean(style)), by least squares in float64."""
    s = style[0].double().numpy().reshape(3, -1)
    m = matched[0].double().numpy().reshape(3, -1)
    s = s - s.mean(axis=1, keepdims=True)
    m = m - m.mean(axis=1, keepdims=True)
    return np.linalg.lstsq(s.T, m.T, rcond=None)[0].T


# ---- YIQ -------------------------------------------------------------------------------------------------------

def test_yiq_matrix_matches_octaves_published_ntsc_matrix():
    unit = pixels_image(torch.eye(3), 3)  # the pure red, green and blue pixels
    yiq = rgb_to_yiq(unit)[0, :, 0, :].double().numpy()  # column j = image of primary j
    np.testing.assert_allclose(yiq, OCTAVE_NTSC, atol=1e-3)


def test_yiq_is_yuv_turned_by_33_degrees():
    # U = 0.492111 (B - Y), V = 0.877283 (R - Y); I = V cos 33° - U sin 33°, Q = V sin 33° + U cos 33°.
    weights = np.array([0.299, 0.587, 0.114])
    b_minus_y = np.array([0, 0, 1.0]) - weights
    r_minus_y = np.array([1.0, 0, 0]) - weights
    u, v = 0.492111 * b_minus_y, 0.877283 * r_minus_y
    turn = math.radians(33)
    expected = np.stack([weights, v * math.cos(turn) - u * math.sin(turn), v * math.sin(turn) + u * math.cos(turn)])
    got = rgb_to_yiq(pixels_image(torch.eye(3, dtype=torch.float64), 3))[0, :, 0, :].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_yiq_matches_scikit_image_if_installed():
    color = pytest.importorskip("skimage.color")
    image = colourful(1)
    expected = color.rgb2yiq(image[0].permute(1, 2, 0).double().numpy())
    np.testing.assert_allclose(rgb_to_yiq(image.double())[0].permute(1, 2, 0).numpy(), expected, atol=1e-12)


def test_white_and_greys_have_no_chrominance_and_their_own_luminance():
    greys = torch.linspace(0, 1, 6).view(1, 1, 1, 6).repeat(1, 3, 1, 1)
    yiq = rgb_to_yiq(greys)
    assert yiq[:, 1:].abs().max() < 1e-6
    assert_close(yiq[:, :1], greys[:, :1], 1e-6)


def test_round_trips_are_exact_to_float_rounding():
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 9, 11)
    assert_close(yiq_to_rgb(rgb_to_yiq(rgb)), rgb, 1e-6)
    yiq = torch.randn(2, 3, 9, 11)  # any YIQ, also outside the RGB cube
    assert_close(rgb_to_yiq(yiq_to_rgb(yiq)), yiq, 1e-6)
    rgb64 = rgb.double()
    assert_close(yiq_to_rgb(rgb_to_yiq(rgb64)), rgb64, 1e-14)


def test_luminance_and_grey():
    image = colourful(2)
    y = luminance(image)
    assert y.shape == (1, 1, 24, 20)
    expected = 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
    assert_close(y[:, 0], expected, 1e-6)
    g = grey(y)
    assert g.shape == (1, 3, 24, 20)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2]) and torch.equal(g[:, :1], y)
    assert_close(luminance(g), y, 1e-6)  # the network's grey image keeps Y


def test_conversions_are_differentiable():
    image = colourful(3).requires_grad_()
    luminance(yiq_to_rgb(rgb_to_yiq(image))).sum().backward()
    expected = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1).expand_as(image)
    assert_close(image.grad, expected, 1e-6)


# ---- combine_luminance -----------------------------------------------------------------------------------------

def hard_pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Content with every corner of the RGB cube (black, white, saturated primaries and secondaries) and random
    colours; a result with random, pure black and pure white pixels, so that many combinations leave the cube."""
    g = torch.Generator().manual_seed(seed)
    content_pixels = torch.cat([CUBE_CORNERS.repeat(8, 1), torch.rand(192, 3, generator=g)])
    result_pixels = torch.cat([torch.rand(128, 3, generator=g), torch.zeros(64, 3), torch.ones(64, 3)])
    result_pixels = result_pixels[torch.randperm(256, generator=g)]
    return pixels_image(result_pixels, 16), pixels_image(content_pixels, 16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_combine_luminance_keeps_the_contents_chrominance_and_stays_in_range(seed):
    result, content = hard_pair(seed)
    out = combine_luminance(result, content)
    assert out.shape == content.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert_close(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(content)[:, 1:], 1e-6)
    # The data really is hard: clamping RGB instead would shift the chrominance by far more than the tolerance.
    naive = yiq_to_rgb(torch.cat([luminance(result), rgb_to_yiq(content)[:, 1:]], 1)).clamp(0, 1)
    assert (rgb_to_yiq(naive)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().max() > 0.05


def test_combine_luminance_moves_the_luminance_only_where_the_colour_needs_it():
    result, content = hard_pair(3)
    y_result, y_content = luminance(result), luminance(content)
    y_out = luminance(combine_luminance(result, content))
    unclamped = yiq_to_rgb(torch.cat([y_result, rgb_to_yiq(content)[:, 1:]], 1))
    fits = ((unclamped >= 0) & (unclamped <= 1)).all(dim=1, keepdim=True)
    assert fits.any() and (~fits).any()
    assert_close(y_out[fits], y_result[fits], 1e-6)
    # Elsewhere Y moved from the result's towards the content's (which always fits), never past it, and stopped
    # at the edge of the cube: some channel is 0 or 1.
    moved = ~fits
    assert ((y_out - y_result) * (y_content - y_out))[moved].min() >= -1e-6
    out = combine_luminance(result, content)
    at_edge = ((out < 1e-6) | (out > 1 - 1e-6)).any(dim=1, keepdim=True)
    assert at_edge[moved].all()


def test_combine_luminance_of_the_content_itself_is_the_content():
    _, content = hard_pair(4)
    assert_close(combine_luminance(content, content), content, 1e-6)


def test_combine_luminance_takes_a_grey_result_and_broadcasts_one_content_image():
    _, content = hard_pair(5)
    g = torch.Generator().manual_seed(5)
    results = grey(torch.rand(2, 1, *content.shape[2:], generator=g))
    out = combine_luminance(results, content)
    assert out.shape == (2, 3, *content.shape[2:])
    assert_close(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(content)[:, 1:].expand(2, -1, -1, -1), 1e-6)


def test_combine_luminance_is_differentiable_in_the_result():
    result, content = hard_pair(6)
    result.requires_grad_()
    combine_luminance(result, content).sum().backward()
    assert result.grad is not None and torch.isfinite(result.grad).all() and result.grad.abs().sum() > 0


# ---- match_luminance -------------------------------------------------------------------------------------------

def test_match_luminance_gives_the_contents_luminance_mean_and_std():
    style, content = colourful(7, 30, 26), colourful(8, 20, 18)  # different sizes are fine
    out = match_luminance(style, content)
    assert out.shape == style.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    y_out = out[0, 0].double().numpy()
    y_content = luminance(content)[0, 0].double().numpy()
    assert y_out.mean() == pytest.approx(y_content.mean(), abs=1e-6)
    assert y_out.std() == pytest.approx(y_content.std(), abs=1e-6)
    # An increasing affine map of the style's own luminance: its pattern survives, with tones not inverted.
    y_style = luminance(style)[0, 0].double().numpy()
    assert np.corrcoef(y_style.ravel(), y_out.ravel())[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_match_luminance_does_not_clamp():
    # A low-contrast style against a black-and-white content: matching the std dev needs values beyond [0, 1].
    style = torch.linspace(0.4, 0.6, 64).view(1, 1, 8, 8).repeat(1, 3, 1, 1)
    content = (torch.arange(64) % 2).float().view(1, 1, 8, 8).repeat(1, 3, 1, 1)
    out = match_luminance(style, content)
    assert out.min() < 0 and out.max() > 1
    assert out[0, 0].double().std(correction=0).item() == pytest.approx(0.5, abs=1e-5)


# A flat 10×10 image of 0.7 has a luminance standard deviation of exactly 0 here; one of 0.4 has about 3e-8 from
# float rounding, which must count as flat too (dividing by it would blow the rounding up to the content's contrast).
@pytest.mark.parametrize("value", [0.7, 0.4])
def test_match_luminance_of_a_flat_style_is_the_contents_mean(value):
    flat = torch.full((1, 3, 10, 10), value)
    content = colourful(9)
    out = match_luminance(flat, content)
    assert torch.isfinite(out).all()
    assert_close(out, torch.full_like(out, luminance(content).mean().item()), 1e-6)


# ---- match_histogram -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", HISTOGRAM_MODES)
def test_match_histogram_gives_the_contents_mean_and_covariance(mode):
    style, content = colourful(10, 30, 26), colourful(11, 20, 18)
    mean_s, cov_s = stats64(style)
    mean_c, cov_c = stats64(content)
    assert np.abs(cov_s - cov_c).max() > 0.005 and np.abs(mean_s - mean_c).max() > 0.05  # a real change
    matched = match_histogram(style, content, mode=mode)
    assert matched.shape == style.shape and matched.dtype == torch.float32
    mean_m, cov_m = stats64(matched)
    np.testing.assert_allclose(mean_m, mean_c, atol=1e-3)
    np.testing.assert_allclose(cov_m, cov_c, atol=1e-3)


@pytest.mark.parametrize("mode", HISTOGRAM_MODES)
def test_match_histogram_uses_the_linear_map_of_its_mode(mode):
    style, content = colourful(12), colourful(13)
    eps = 1e-5
    a = recovered_map(style, match_histogram(style, content, mode=mode, eps=eps))
    cov_s = stats64(style)[1] + eps * np.eye(3)
    cov_c = stats64(content)[1] + eps * np.eye(3)
    np.testing.assert_allclose(a @ cov_s @ a.T, cov_c, atol=2e-6)  # exact on the regularised covariances
    if mode == "chol":  # L_c L_s^-1 is lower triangular, with a positive diagonal
        assert np.abs(np.triu(a, 1)).max() < 1e-5 and (np.diag(a) > 0).all()
    elif mode == "pca":  # A C_s^½ = C_c^½: symmetric positive definite
        np.testing.assert_allclose(a @ sqrt_psd(cov_s), sqrt_psd(cov_c), atol=1e-5)
    else:  # the symmetric positive definite A
        np.testing.assert_allclose(a, a.T, atol=1e-4)
        assert np.linalg.eigvalsh((a + a.T) / 2).min() > 0


def test_the_symmetric_map_moves_the_colours_least():
    style, content = colourful(14), colourful(15)

    def displacement(mode):
        return (match_histogram(style, content, mode=mode) - style).double().pow(2).mean().item()

    assert displacement("sym") < min(displacement("chol"), displacement("pca"))


def test_match_histogram_defaults_to_pca_as_gatys_notebooks_call_it():
    style, content = colourful(16), colourful(17)
    assert torch.equal(match_histogram(style, content), match_histogram(style, content, mode="pca"))
    assert not torch.allclose(match_histogram(style, content, mode="chol"), match_histogram(style, content))


@pytest.mark.parametrize("mode", HISTOGRAM_MODES)
def test_a_flat_grey_style_becomes_the_contents_mean_colour(mode):
    flat = torch.full((1, 3, 12, 12), 0.5)
    content = colourful(18)
    matched = match_histogram(flat, content, mode=mode)
    assert torch.isfinite(matched).all()
    mean_c = torch.tensor(stats64(content)[0], dtype=torch.float32).view(1, 3, 1, 1)
    assert_close(matched, mean_c.expand_as(matched), 1e-4)


@pytest.mark.parametrize("mode", HISTOGRAM_MODES)
def test_a_greyscale_style_gives_finite_output_with_the_contents_mean(mode):
    g = torch.Generator().manual_seed(19)
    greyscale = torch.rand(1, 1, 12, 12, generator=g).repeat(1, 3, 1, 1)  # rank-1 covariance
    content = colourful(20)
    matched = match_histogram(greyscale, content, mode=mode)
    assert torch.isfinite(matched).all()
    np.testing.assert_allclose(stats64(matched)[0], stats64(content)[0], atol=1e-4)


def test_match_histogram_works_per_image_in_a_batch():
    styles = torch.cat([colourful(21), colourful(22)])
    content = colourful(23)
    matched = match_histogram(styles, content)
    for i in range(2):
        assert_close(matched[i:i + 1], match_histogram(styles[i:i + 1], content), 1e-6)


def test_match_histogram_needs_no_gradient():
    style = colourful(24).requires_grad_()
    assert not match_histogram(style, colourful(25)).requires_grad


# ---- bad input -------------------------------------------------------------------------------------------------

def raises_one_line(call, *words):
    with pytest.raises(NSTError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    return message


def test_unknown_histogram_mode():
    message = raises_one_line(lambda: match_histogram(colourful(1), colourful(2), mode="svd"),
                              "'svd'", "'chol'", "'pca'", "'sym'")
    assert message.startswith("unknown histogram matching mode")


@pytest.mark.parametrize("eps", [0, -1e-5, float("nan"), "1e-5", True])
def test_bad_eps(eps):
    raises_one_line(lambda: match_histogram(colourful(1), colourful(2), eps=eps), "eps")


@pytest.mark.parametrize("bad, words", [
    ([[0.5]], ["list", "tensor"]),
    (np.zeros((1, 3, 4, 4)), ["ndarray", "tensor"]),
    (torch.rand(3, 8, 8), ["(3, 8, 8)", "unsqueeze(0)"]),
    (torch.rand(1, 4, 8, 8), ["(1, 4, 8, 8)", "N×3×H×W"]),
    (torch.rand(1, 3, 0, 8), ["(1, 3, 0, 8)"]),
    (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), ["torch.uint8", "float"]),
    (torch.full((1, 3, 8, 8), float("nan")), ["NaN"]),
    (torch.full((1, 3, 8, 8), float("inf")), ["infinite"]),
])
def test_bad_images_name_the_argument(bad, words):
    good = colourful(1, 8, 8)
    raises_one_line(lambda: rgb_to_yiq(bad), "rgb_to_yiq's image", *words)
    raises_one_line(lambda: yiq_to_rgb(bad), "yiq_to_rgb's input", *words)
    raises_one_line(lambda: luminance(bad), "luminance's image", *words)
    raises_one_line(lambda: match_luminance(bad, good), "match_luminance's style", *words)
    raises_one_line(lambda: match_luminance(good, bad), "match_luminance's content", *words)
    raises_one_line(lambda: combine_luminance(bad, good), "combine_luminance's result", *words)
    raises_one_line(lambda: combine_luminance(good, bad), "combine_luminance's content", *words)
    raises_one_line(lambda: match_histogram(bad, good), "match_histogram's style", *words)
    raises_one_line(lambda: match_histogram(good, bad), "match_histogram's content", *words)


def test_grey_wants_one_channel():
    raises_one_line(lambda: grey(torch.rand(1, 3, 4, 4)), "grey's luminance", "N×1×H×W")


def test_mismatched_pairs():
    raises_one_line(lambda: combine_luminance(colourful(1, 8, 8), colourful(2, 8, 9)), "9×8", "8×8", "resize")
    two, three = colourful(1, 8, 8).repeat(2, 1, 1, 1), colourful(2, 8, 8).repeat(3, 1, 1, 1)
    raises_one_line(lambda: match_histogram(two, three), "2 images", "3")
    raises_one_line(lambda: match_luminance(two, three), "2 images", "3")


def test_choices():
    assert PRESERVE_COLORS == ("luminance", "histogram")
    assert HISTOGRAM_MODES == ("chol", "pca", "sym")


# ---- CUDA ------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpus_results():
    result, content = hard_pair(26)
    style = colourful(27, 16, 16)
    cuda = torch.device("cuda")
    out = combine_luminance(result.to(cuda), content.to(cuda))
    assert out.device.type == "cuda"
    assert_close(out.cpu(), combine_luminance(result, content), 1e-6)
    assert_close(match_luminance(style.to(cuda), content.to(cuda)).cpu(), match_luminance(style, content), 1e-5)
    for mode in HISTOGRAM_MODES:
        assert_close(match_histogram(style.to(cuda), content.to(cuda), mode=mode).cpu(),
                     match_histogram(style, content, mode=mode), 1e-5)
    raises_one_line(lambda: match_histogram(style.to(cuda), content), "cuda", "cpu", "same device")
