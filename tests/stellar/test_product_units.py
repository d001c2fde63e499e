"""Stellar FITS products (line lists, measurement exports) read without unit warnings."""

from __future__ import annotations

from pathlib import Path

from astropy import units as u
from astropy.table import Table

from helpers.fits_units import assert_all_fits_units
from photonpipe.stellar.export import export_measurements
from photonpipe.stellar.linelist import read_linelist
from photonpipe.stellar.session import Session

DATA = Path(__file__).resolve().parents[1] / "data" / "stellar"


def test_line_list_and_export_fits_have_fits_standard_units(tmp_path: Path) -> None:
    lines = DATA / "frebel2013_hd122563_ew.moog2"
    subset = tmp_path / "subset.moog"
    subset.write_text("".join(lines.read_text().splitlines(keepends=True)[:12]))
    linelist = read_linelist(subset).write(tmp_path / "lines.fits")
    session = Session.new([DATA / "hd122563_mike_linewindows.fits.gz"])
    session.measure(subset)
    export = export_measurements(session, tmp_path / "measurements.fits")
    units = assert_all_fits_units([linelist, export])
    # mÅ has no FITS name: astropy writes it as a power of ten of Å, which reads back as mÅ
    assert "TUNIT6=10**-3 Angstrom" in units["measurements.fits"]  # ew
    assert Table.read(export)["ew"].unit.to(u.mAA) == 1.0
