"""Every light-curve product's FITS unit strings parse in astropy without a warning."""

from __future__ import annotations

from pathlib import Path

from astropy.io import fits

from helpers.fits_units import assert_all_fits_units
from helpers.lightcurves import event_files, simulate
from photonpipe.lightcurves import ExtractionParameters, read_dataset
from photonpipe.lightcurves.dataset import read_datasets
from photonpipe.lightcurves.products import make_composites, make_individual
from photonpipe.lightcurves.simulate import Exposure, Variability
from photonpipe.lightcurves.stis import tag_to_corrtag, write_corrtag


def test_every_light_curve_product_has_fits_standard_units(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    cos = [
        simulate(raw, Exposure(f"lun{i}01abq", exptime=300.0, expstart=58000.25 + i, gaps=()))
        for i in (1, 2)
    ]
    stis = simulate(
        raw,
        Exposure("oun101abq", mode="G140L", exptime=300.0, gaps=(), variability=Variability()),
    )
    out = tmp_path / "products"
    parameters = ExtractionParameters(step=30.0)
    individual = make_individual(read_dataset(*event_files(cos[0])), out, parameters, plot=False)
    composites = make_composites(
        [p for c in cos for p in event_files(c)], out, parameters, plot=False
    )
    tag = next(p for p in stis.files if p.name.endswith("_tag.fits"))
    x1d = next(p for p in stis.files if p.name.endswith("_x1d.fits"))
    corrtag = write_corrtag(tag_to_corrtag(tag, x1d), tmp_path / "oun101abq_corrtag.fits")
    stis_curve = make_individual(read_datasets([corrtag, x1d])[0], out, parameters, plot=False)
    products = [individual.path, *(c.path for c in composites), corrtag, stis_curve.path]
    units = assert_all_fits_units(products)
    with fits.open(individual.path) as hdus:
        names = hdus[1].columns.names
    gross, flux, bjd = (names.index(n) + 1 for n in ("GROSS", "FLUX", "TIME_BJD_TDB"))
    assert f"TUNIT{gross}=count s-1" in units[individual.path.name]
    assert f"TUNIT{flux}=erg s-1 cm-2" in units[individual.path.name]
    assert f"TUNIT{bjd}=d" in units[individual.path.name]
    assert "TUNIT9=Angstrom" in units[corrtag.name]  # WAVELENGTH
