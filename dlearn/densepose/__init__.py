"""DensePose data: the body-part UV charts (``UV_Processed.mat``).

The names below load on first use (PEP 562), so that importing a light submodule such as
:mod:`dlearn.densepose.options` does not load scipy through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlearn.lazy import lazy_attributes

if TYPE_CHECKING:
    from dlearn.densepose.uv import (
        NUM_PARTS,
        UVChartError,
        UVCharts,
        body_face_parts,
        face_chart_corners,
        load_uv_charts,
        write_uv_charts,
    )

__all__ = ["NUM_PARTS", "UVChartError", "UVCharts", "body_face_parts", "face_chart_corners", "load_uv_charts", "write_uv_charts"]

__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "dlearn.densepose.uv"))
