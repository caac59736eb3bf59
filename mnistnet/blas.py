"""One BLAS call numpy does not expose: C = alpha * op(A) @ B + beta * C, in place.

Imports numpy and the standard library (ctypes). numpy's `matmul` always writes a fresh
product, so an SGD update W -= lr * x.T @ d costs a product into a buffer plus a pass over W;
sgemm with beta = 1 adds the product into W as it computes it (at batch 50 the first layer's
update is a quarter of the step). The function is numpy's own bundled OpenBLAS, found by its
exported symbol; where it cannot be found (another numpy build), `gemm` computes the same
thing with numpy, so results never depend on it being there.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# numpy >= 2 wheels bundle scipy-openblas with prefixed, 64-bit-integer symbols; other builds
# may export plain cblas names with 32-bit integers.
_SYMBOLS = (("scipy_cblas_sgemm64_", ctypes.c_int64), ("cblas_sgemm64_", ctypes.c_int64),
            ("scipy_cblas_sgemm", ctypes.c_int), ("cblas_sgemm", ctypes.c_int))


def _find_sgemm():
    """numpy's cblas_sgemm as a ctypes function, or None."""
    root = os.path.dirname(np.__file__)
    candidates = [*glob.glob(root + ".libs/*openblas*"), *glob.glob(os.path.join(root, ".dylibs", "*openblas*"))]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, int_t in _SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            ptr, f32 = ctypes.c_void_p, ctypes.c_float
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_t, int_t, int_t, f32, ptr, int_t,
                           ptr, int_t, f32, ptr, int_t]
            fn.restype = None
            return fn
    return None


_sgemm = _find_sgemm()
AVAILABLE = _sgemm is not None


def gemm(alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray,
         trans_a: bool = False, use_blas: bool = True) -> None:
    """c = alpha * op(a) @ b + beta * c, in place; op(a) is a.T when trans_a.

    a: (m, k) float32, or (k, m) when trans_a; b: (k, n) float32; c: (m, n) float32, writable.
    ValueError for another dtype or shapes that do not fit. C-contiguous arrays (rows of a
    C-contiguous buffer are) go to BLAS; others, or use_blas=False, take the numpy path.
    """
    if not all(isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2 for x in (a, b, c)):
        raise ValueError("gemm needs 2-D float32 arrays, got "
                         + ", ".join(f"{getattr(x, 'dtype', type(x))} {np.shape(x)}" for x in (a, b, c)))
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n = b.shape[1]
    if b.shape[0] != k or c.shape != (m, n):
        raise ValueError(f"gemm shapes do not fit: op(a) {(m, k)}, b {b.shape}, c {c.shape}")
    if not c.flags.writeable:
        raise ValueError("gemm writes into c, which is read-only")
    # The pointers below must describe exactly these arrays: only C-contiguous ones qualify.
    if (_sgemm is not None and use_blas and m and n and k
            and a.flags.c_contiguous and b.flags.c_contiguous and c.flags.c_contiguous):
        _sgemm(_ROW_MAJOR, _TRANS if trans_a else _NO_TRANS, _NO_TRANS, m, n, k, alpha,
               a.ctypes.data, a.shape[1], b.ctypes.data, n, beta, c.ctypes.data, n)
        return
    product = np.matmul(a.T if trans_a else a, b)
    if beta != 1.0:
        c *= np.float32(beta)
    if alpha != 1.0:
        product *= np.float32(alpha)
    c += product
