"""Keeping the content photo's colours: YIQ conversions, luminance-only transfer and colour histogram matching.

Plain style transfer copies the painting's colours along with its brush strokes. Gatys, Ecker, Bethge, Hertzmann
& Shechtman 2017, "Controlling Perceptual Factors in Neural Style Transfer" (CVPR; arXiv:1611.07865, section
"Colour control"; first in Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural Artistic Style
Transfer", arXiv:1606.05897) keep the photo's colours in one of two ways:

- **Luminance-only transfer** (``preserve_colors="luminance"``): the transfer runs on luminance images (Y of YIQ,
  shown to the network as grey RGB), with the style's luminance first matched to the content's mean and standard
  deviation (:func:`match_luminance`); the result's luminance is then put together with the content image's
  chrominance I and Q (:func:`combine_luminance`).
- **Colour histogram matching** (``preserve_colors="histogram"``): before an ordinary transfer, the style image's
  pixels are transformed linearly so that their mean and 3×3 colour covariance equal the content's
  (:func:`match_histogram`).

Their code is leongatys/NeuralImageSynthesis, ``ExampleNotebooks/ColourControl.ipynb`` (functions ``match_color``
and ``lum_transform``); this module was written from the paper and that notebook, not copied. Where it differs from
the notebook, the docstrings say so.

The YIQ matrix is scikit-image's ``yiq_from_rgb`` (``skimage/color/colorconv.py``), the NTSC YIQ space: Y from the
Rec. 601 luma weights 0.299, 0.587, 0.114, and I, Q the colour differences U = 0.492111 (B - Y), V = 0.877283 (R - Y)
turned by 33° (I = V cos 33° - U sin 33°, Q = V sin 33° + U cos 33°, equal to its 8 digits; the tests check this).
It agrees to within 0.001 with the three-figure matrix GNU Octave's ``rgb2ntsc`` documents (0.596, -0.274, -0.322 /
0.211, -0.523, 0.312; Octave notes that the FCC's own version uses two figures and differs slightly). Gatys' notebook
uses the same Y weights.

Introduced in lesson 8 (Controlling the result).
"""

from __future__ import annotations

import math

import torch

from .errors import NSTError

PRESERVE_COLORS = ("luminance", "histogram")
HISTOGRAM_MODES = ("chol", "pca", "sym")

# scikit-image's yiq_from_rgb (NTSC YIQ, see the module docstring). Rows Y, I, Q; columns R, G, B. Kept in float64
# and cast to each image's dtype, so that the inverse below is exact to float64 rounding and rgb_to_yiq / yiq_to_rgb
# are inverses to the image dtype's rounding.
_YIQ_FROM_RGB = torch.tensor([[0.299, 0.587, 0.114],
                              [0.59590059, -0.27455667, -0.32134392],
                              [0.21153661, -0.52273617, 0.31119955]], dtype=torch.float64)
_RGB_FROM_YIQ = torch.linalg.inv(_YIQ_FROM_RGB)

# A style whose luminance standard deviation is below this counts as flat. A flat float32 image's statistics come out
# around 3e-8 from float rounding, not 0; a real image quantised to 8 bits varies far more than a millionth.
_FLAT_STD = 1e-6


def _check_image(image: object, what: str, channels: int = 3) -> None:
    kind = "RGB in [0, 1]" if channels == 3 else "luminance"
    if not isinstance(image, torch.Tensor):
        raise NSTError(f"{what} is a {type(image).__name__}, not a tensor: pass an N×{channels}×H×W float tensor "
                       f"({kind})")
    if image.dim() != 4 or image.shape[1] != channels or image.numel() == 0:
        raise NSTError(f"{what} has shape {tuple(image.shape)}: pass an N×{channels}×H×W tensor ({kind}); "
                       f"add the batch dimension with .unsqueeze(0) if it is missing")
    if not image.is_floating_point():
        raise NSTError(f"{what} has dtype {image.dtype}: pass a float tensor, e.g. image.float() / 255")
    if not bool(torch.isfinite(image).all()):
        raise NSTError(f"{what} contains NaN or infinite values: pass a finite image")


def _check_pair(first: torch.Tensor, second: torch.Tensor, names: tuple[str, str]) -> None:
    """Both images on one device, with the same number of images or one of them a single image."""
    if first.device != second.device:
        raise NSTError(f"{names[0]} is on {first.device} and {names[1]} on {second.device}: "
                       f"move both to the same device")
    if first.shape[0] != second.shape[0] and 1 not in (first.shape[0], second.shape[0]):
        raise NSTError(f"{names[0]} holds {first.shape[0]} images and {names[1]} {second.shape[0]}: "
                       f"pass the same number of each, or one {names[1]} image")


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Each pixel's channel vector multiplied by the K×C ``matrix``."""
    return torch.einsum("kc,nchw->nkhw", matrix.to(device=image.device, dtype=image.dtype), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """An N×3×H×W RGB image in YIQ: channel 0 the luminance Y, channels 1 and 2 the chrominance I and Q.

    Linear (scikit-image's NTSC matrix, see the module docstring), so any finite values are accepted; RGB in [0, 1]
    gives Y in [0, 1]. Differentiable. Introduced in lesson 8.
    """
    _check_image(image, "rgb_to_yiq's image")
    return _apply(_YIQ_FROM_RGB, image)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """An N×3×H×W YIQ image back in RGB: the exact inverse of :func:`rgb_to_yiq` up to float rounding.

    Not clamped: a YIQ triple outside the RGB cube gives RGB values outside [0, 1]. Differentiable.
    """
    _check_image(yiq, "yiq_to_rgb's input")
    return _apply(_RGB_FROM_YIQ, yiq)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The luminance Y = 0.299 R + 0.587 G + 0.114 B of an N×3×H×W RGB image, as N×1×H×W. Differentiable."""
    _check_image(image, "luminance's image")
    return _apply(_YIQ_FROM_RGB[:1], image)


def grey(luminance: torch.Tensor) -> torch.Tensor:
    """An N×1×H×W luminance as the N×3×H×W grey image (Y, Y, Y) that the network sees in luminance-only transfer.

    A grey pixel's own luminance is Y again, since the luma weights sum to 1. Differentiable.
    """
    _check_image(luminance, "grey's luminance", channels=1)
    return luminance.repeat(1, 3, 1, 1)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    r"""The style image's luminance with the content's mean and standard deviation, as a grey N×3×H×W image.

    Gatys et al. 2017's preprocessing for luminance-only transfer: with :math:`\mu, \sigma` the mean and standard
    deviation of each image's luminance over its pixels, :math:`Y_s' = (Y_s - \mu_s)\,\sigma_c / \sigma_s + \mu_c`,
    so that the style's tones span the photo's and the result's luminance fits the photo's chrominance. A flat style
    (:math:`\sigma_s = 0`, or below 1e-6 from float rounding) becomes :math:`\mu_c` everywhere instead of dividing by
    zero. Their notebook only shifts the mean, then clamps; this follows the paper's formula.

    The values may leave [0, 1] and are not clamped: the network only computes the style targets from this image,
    and clamping would change the very mean and standard deviation that were matched. Style and content may have
    different sizes (only the content's statistics are used). Differentiable.
    Introduced in lesson 8.
    """
    _check_image(style, "match_luminance's style")
    _check_image(content, "match_luminance's content")
    _check_pair(style, content, ("style", "content"))
    y_style = luminance(style)
    y_content = luminance(content.to(style.dtype))
    mu_s = y_style.mean(dim=(2, 3), keepdim=True)
    sigma_s = y_style.std(dim=(2, 3), correction=0, keepdim=True)
    mu_c = y_content.mean(dim=(2, 3), keepdim=True)
    sigma_c = y_content.std(dim=(2, 3), correction=0, keepdim=True)
    gain = torch.where(sigma_s > _FLAT_STD, sigma_c / sigma_s.clamp_min(_FLAT_STD), torch.zeros_like(sigma_s))
    return grey((y_style - mu_s) * gain + mu_c)


def combine_luminance(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance Y with the content image's chrominance I and Q, as RGB in [0, 1].

    The last step of luminance-only transfer (Gatys et al. 2017). ``result`` (the transfer's output) and
    ``content`` (RGB in [0, 1], as :func:`nstutil.load_image` gives) have the same H×W. Some (Y, I, Q) lie outside
    the RGB cube; clamping R, G and B, as Gatys' notebook does (and saving as an image does to jcjohnson's
    ``-original_colors`` output), would then shift I and Q. Instead each pixel's Y is clamped to the interval in
    which all three channels stay in [0, 1] for its I and Q (the content's own Y lies in it, so it is never empty):
    the chrominance is the content's exactly, up to float rounding, and only the brightness of out-of-gamut pixels
    gives way. The notebook takes the result's
    luminance as the mean of its channels (for the grey images of luminance-only transfer that is the same Y) and
    recombines in YUV; the paper, and this function, use YIQ.
    Differentiable with respect to ``result`` (zero gradient where Y is clamped). Introduced in lesson 8.
    """
    _check_image(result, "combine_luminance's result")
    _check_image(content, "combine_luminance's content")
    _check_pair(result, content, ("result", "content"))
    if result.shape[2:] != content.shape[2:]:
        raise NSTError(f"combine_luminance got a {result.shape[3]}×{result.shape[2]} result and a "
                       f"{content.shape[3]}×{content.shape[2]} content image: resize the content to the result's size")
    chroma = rgb_to_yiq(content.to(result.dtype))[:, 1:]
    # RGB = per_y * Y + offset, with per_y the first column of the inverse matrix (1, 1, 1 to 1e-8) and offset the
    # RGB of the pixel's I and Q alone; each channel's [0, 1] bounds Y from below and above.
    per_y = _RGB_FROM_YIQ[:, 0].to(device=result.device, dtype=result.dtype).view(1, 3, 1, 1)
    offset = _apply(_RGB_FROM_YIQ[:, 1:], chroma)
    lowest = (-offset / per_y).amax(dim=1, keepdim=True)
    highest = ((1 - offset) / per_y).amin(dim=1, keepdim=True)
    y = luminance(result).clamp(min=lowest, max=highest)
    # The final clamp only removes float rounding (about 1e-7); it cannot move I or Q further than that.
    return (per_y * y + offset).clamp(0.0, 1.0)


def _matrix_power(covariance: torch.Tensor, power: float) -> torch.Tensor:
    """A symmetric positive definite matrix (batch) to the power ±1/2, through its eigendecomposition."""
    values, vectors = torch.linalg.eigh(covariance)
    # Eigenvalues of a covariance are >= eps in exact arithmetic; float rounding can push a tiny one below 0.
    values = values.clamp_min(torch.finfo(values.dtype).tiny)
    return vectors @ torch.diag_embed(values.pow(power)) @ vectors.transpose(-1, -2)


def _colour_map(cov_style: torch.Tensor, cov_content: torch.Tensor, mode: str) -> torch.Tensor:
    """A with A cov_style Aᵀ = cov_content, for the given choice of square root (both regularised, float64)."""
    if mode == "chol":
        # A = L_c L_s⁻¹ with L the Cholesky factors: A C_s Aᵀ = L_c L_s⁻¹ L_s L_sᵀ L_s⁻ᵀ L_cᵀ = C_c.
        lower_style = torch.linalg.cholesky(cov_style)
        lower_content = torch.linalg.cholesky(cov_content)
        return torch.linalg.solve_triangular(lower_style, lower_content, upper=False, left=False)
    if mode == "pca":
        # A = C_c^½ C_s^-½, both symmetric square roots from the eigendecompositions (principal axes).
        return _matrix_power(cov_content, 0.5) @ _matrix_power(cov_style, -0.5)
    # sym: A = C_s^-½ (C_s^½ C_c C_s^½)^½ C_s^-½, the one symmetric positive definite A; it moves the pixels least
    # on average (the linear Monge–Kantorovich map of Pitié & Kokaram 2007, "The linear Monge-Kantorovitch linear
    # colour mapping for example-based colour transfer").
    root = _matrix_power(cov_style, 0.5)
    inverse_root = _matrix_power(cov_style, -0.5)
    middle = root @ cov_content @ root
    middle = (middle + middle.transpose(-1, -2)) / 2
    return inverse_root @ _matrix_power(middle, 0.5) @ inverse_root


def _mean_and_covariance(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each image's mean colour (N×3×1), its pixels less the mean (N×3×HW) and its colour covariance (N×3×3)."""
    pixels = image.flatten(2)
    mean = pixels.mean(dim=2, keepdim=True)
    centred = pixels - mean
    return mean, centred, centred @ centred.transpose(1, 2) / pixels.shape[2]


def match_histogram(style: torch.Tensor, content: torch.Tensor, mode: str = "pca", eps: float = 1e-5) -> torch.Tensor:
    r"""The style image's colours transformed linearly so that their mean and covariance equal the content's.

    Colour histogram matching from Gatys et al. 2017: every style pixel :math:`x` becomes
    :math:`x' = A (x - \mu_s) + \mu_c`, with :math:`\mu` the mean colours and :math:`A \Sigma_s A^T = \Sigma_c`
    for the 3×3 colour covariances :math:`\Sigma`. ``mode`` picks the square root that gives A, as their
    ``match_color`` does: ``"chol"`` Cholesky factors, :math:`A = L_c L_s^{-1}`; ``"pca"`` the symmetric square
    roots from the eigendecompositions, :math:`A = \Sigma_c^{1/2} \Sigma_s^{-1/2}`; ``"sym"`` the symmetric A (the
    linear Monge–Kantorovich map, which moves the colours least). The default is ``"pca"`` because their notebooks
    call ``match_color(..., mode='pca')`` in every colour and scale control run (the function's own default in
    ColourControl.ipynb is ``'sym'``, but no call uses it).

    ``eps`` (> 0) is added to the diagonal of both covariances, as their code does, so that a flat grey style
    (covariance 0) or a greyscale one (rank 1) still gives a finite A: a flat style becomes the content's mean
    colour. The statistics are per image (N×3×H×W; style and content may differ in size, and one content image may
    serve several styles); the 3×3 algebra runs in float64 on the CPU. Unlike their code the output is not
    clamped to [0, 1]: clamping would move the mean and covariance just matched, the network only computes the
    style targets from this image, and a display clamps anyway. Not differentiable (computed without gradients):
    it prepares a target image, nothing is optimised through it. Introduced in lesson 8.
    """
    if mode not in HISTOGRAM_MODES:
        raise NSTError(f"unknown histogram matching mode {mode!r}: use one of 'chol', 'pca', 'sym'")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise NSTError(f"match_histogram's eps is {eps!r}: give a small positive number such as 1e-5")
    _check_image(style, "match_histogram's style")
    _check_image(content, "match_histogram's content")
    _check_pair(style, content, ("style", "content"))
    # A preprocessing step: nothing is optimised through it, and eigh's gradient is infinite at the repeated
    # eigenvalues of a flat style's covariance.
    with torch.no_grad():
        _, centred_style, cov_style = _mean_and_covariance(style)
        mean_content, _, cov_content = _mean_and_covariance(content.to(style.dtype))
        ridge = eps * torch.eye(3, dtype=torch.float64)
        colour_map = _colour_map(cov_style.double().cpu() + ridge, cov_content.double().cpu() + ridge, mode)
        matched = colour_map.to(device=style.device, dtype=style.dtype) @ centred_style + mean_content
    return matched.reshape(matched.shape[0], 3, *style.shape[2:])
