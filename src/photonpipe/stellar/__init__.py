"""Stellar analysis sessions in the SMH ("Spectroscopy Made Hard") data model.

A session holds the input spectra of one star (never edited), and everything done to them:
radial velocity, continuum per order, the stacked rest-frame spectrum, line lists and line
measurements, physics provenance and notes. It is saved as a ``.smh`` gzipped tarball
(:mod:`photonpipe.stellar.sessionfile`) whose ``session.pkl`` holds only plain data and is read
with a restricted unpickler (:mod:`photonpipe.stellar.safe_pickle`).
"""
