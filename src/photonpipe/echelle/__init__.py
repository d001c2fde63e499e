"""Echelle reduction for LCO's NRES spectrographs.

Raw fpacked frames → pre-processing → master calibrations (bias, dark, flat per lit-fibre pair,
arc/TRIPLE) → order traces → optimal and box extraction → Th-Ar wavelength solution → 1-D and
2-D products with provenance. :mod:`photonpipe.echelle.simulate` writes nights of raw frames
with a known truth. See ``docs/echelle.md``.
"""
