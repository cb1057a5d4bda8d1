# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""The tomography core: no network, no MONAI engine, no file.

``geometry`` (directions, frames, slice grids), ``radon`` (``R_sum``, the second difference, backprojection),
``nufft`` and ``fourier_backprojection`` (the backprojection through one non-uniform FFT), ``radon_operator`` (the
forward operator and its adjoint as autograd pairs) and ``reconstruction`` (filtered backprojection, CAM stacks,
the iterative reconstruction).
"""
