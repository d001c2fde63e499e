"""Echelle reduction for LCO's NRES spectrographs.

Raw fpacked frames → pre-processing → master calibrations (bias, dark, flat per lit-fibre pair,
arc/TRIPLE) → order traces → optimal and box extraction → Th-Ar wavelength solution → 1-D and
2-D products with provenance. :mod:`photonpipe.echelle.simulate` writes nights of raw frames
with a known truth. See ``docs/echelle.md``.
"""

from typing import TYPE_CHECKING

from photonpipe._exports import install_lazy_exports

if TYPE_CHECKING:
    from photonpipe.echelle.exports import export_velocities
    from photonpipe.echelle.formats import read_raw
    from photonpipe.echelle.pipeline import (
        NightReport,
        make_traces,
        make_triple,
        reduce_files,
        reduce_night,
        stack_calibration,
    )
    from photonpipe.echelle.rv import measure_files
    from photonpipe.echelle.settings import Options
    from photonpipe.echelle.simulate import simulate_night
    from photonpipe.echelle.targets import add_targets, import_targets, list_targets
    from photonpipe.echelle.templates import make_zero

# The main API, imported on first use (``import photonpipe.echelle`` itself stays cheap).
_EXPORTS = {
    "Options": ".settings",
    "NightReport": ".pipeline",
    "reduce_night": ".pipeline",
    "reduce_files": ".pipeline",
    "stack_calibration": ".pipeline",
    "make_traces": ".pipeline",
    "make_triple": ".pipeline",
    "read_raw": ".formats",
    "simulate_night": ".simulate",
    "add_targets": ".targets",
    "import_targets": ".targets",
    "list_targets": ".targets",
    "make_zero": ".templates",
    "measure_files": ".rv",
    "export_velocities": ".exports",
}
__all__ = [
    "NightReport",
    "Options",
    "add_targets",
    "export_velocities",
    "import_targets",
    "list_targets",
    "make_traces",
    "make_triple",
    "make_zero",
    "measure_files",
    "read_raw",
    "reduce_files",
    "reduce_night",
    "simulate_night",
    "stack_calibration",
]
install_lazy_exports(__name__, _EXPORTS)
