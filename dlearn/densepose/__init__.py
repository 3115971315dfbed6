"""DensePose data: the body-part UV charts (``UV_Processed.mat``)."""

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
