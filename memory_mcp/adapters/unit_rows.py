"""What every embedder returns: float32 rows of length 1 (the ports' ``Vector``)."""

from __future__ import annotations

import numpy as np

from ..memory.ports import Vector


def unit_rows(matrix: np.ndarray) -> Vector:
    """``matrix``'s rows scaled to length 1, as float32; an all-zero row stays zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
