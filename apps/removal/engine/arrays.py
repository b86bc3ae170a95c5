"""Array type aliases shared by the engine's modules."""

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Bool = npt.NDArray[np.bool_]
Idx = npt.NDArray[np.intp]


def f32(a: npt.ArrayLike) -> F32:
    """As float32 (no copy when it already is): OpenCV's stubs return untyped arrays."""
    return np.asarray(a, dtype=np.float32)
