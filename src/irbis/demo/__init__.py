"""Synthetic camera-trap data for ``irbis demo``, the tests and the benchmarks.

:mod:`irbis.demo.synthetic` builds a station network on a Sailyugem-like
ridge system, writes its registry CSV and fills fake memory cards with
deterministic, realistic-looking JPEGs (EXIF, burned-in info bar, optional
XMP species tags).
"""
