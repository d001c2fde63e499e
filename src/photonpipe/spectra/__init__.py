"""Instrument-independent spectral science shared by photonpipe's applications.

A small :class:`~photonpipe.spectra.spectrum.Spectrum` container, flux-conserving resampling,
cross-correlation radial velocities, continuum fitting, line profiles and profile fitting, and
barycentric corrections. Nothing here imports an application.
"""
