"""Stellar analysis sessions in the SMH ("Spectroscopy Made Hard") data model.

A session holds the input spectra of one star (never edited), and everything done to them:
radial velocity, continuum per order, the stacked rest-frame spectrum, line lists and line
measurements, physics provenance and notes. It is saved as a ``.smh`` gzipped tarball
(:mod:`photonpipe.stellar.sessionfile`) whose ``session.pkl`` holds only plain data and is read
with a restricted unpickler (:mod:`photonpipe.stellar.safe_pickle`).
"""

from typing import TYPE_CHECKING

from photonpipe._exports import install_lazy_exports

if TYPE_CHECKING:
    from photonpipe.stellar.export import export_measurements
    from photonpipe.stellar.linelist import Line, LineList, read_linelist
    from photonpipe.stellar.readers import read_spectrum
    from photonpipe.stellar.session import TEMPLATES, Session, SessionError
    from photonpipe.stellar.simulate import simulate_echelle, write_simulated_star

# The main API, imported on first use (``import photonpipe.stellar`` itself stays cheap).
_EXPORTS = {
    "Session": ".session",
    "SessionError": ".session",
    "TEMPLATES": ".session",
    "read_spectrum": ".readers",
    "Line": ".linelist",
    "LineList": ".linelist",
    "read_linelist": ".linelist",
    "export_measurements": ".export",
    "simulate_echelle": ".simulate",
    "write_simulated_star": ".simulate",
}
__all__ = [
    "TEMPLATES",
    "Line",
    "LineList",
    "Session",
    "SessionError",
    "export_measurements",
    "read_linelist",
    "read_spectrum",
    "simulate_echelle",
    "write_simulated_star",
]
install_lazy_exports(__name__, _EXPORTS)
