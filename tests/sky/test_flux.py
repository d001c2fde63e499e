from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from photonpipe.errors import InputFileError
from photonpipe.sky.flux import calibrate_sky_fibres
from photonpipe.sky.formats import (
    frame_name,
    read_spcframe,
    read_spfluxcalib,
    read_spframe,
)
from photonpipe.sky.pixmask import DEFAULT_REJECT_FLAGS, flagged, mask_value
from photonpipe.sky.simulate import SimulatedPlate


def _frames(plate: SimulatedPlate):  # type: ignore[no-untyped-def]
    for path in sorted(plate.directory.glob("spFrame-*.fits")):
        frame = read_spframe(path)
        _, calib = read_spfluxcalib(path.with_name(path.name.replace("spFrame", "spFluxcalib")))
        cframe = read_spcframe(path.with_name(path.name.replace("spFrame", "spCFrame")))
        yield frame, calib, cframe


def test_traceset_wavelengths_match_the_simulated_grid(noiseless_plate: SimulatedPlate) -> None:
    with fits.open(noiseless_plate.truth) as truth:
        for frame, calib, cframe in _frames(noiseless_plate):
            spectra = calibrate_sky_fibres(frame, calib, cframe)
            exact = truth[f"LOGLAM_{frame.camera}-{frame.exposure:08d}"].data
            ours = np.log10(spectra.wavelength_nm * 10.0)
            assert np.max(np.abs(ours - exact)) < 1e-6


def test_flux_reproduces_the_truth_to_a_tenth_of_a_percent(
    noiseless_plate: SimulatedPlate,
) -> None:
    checked = 0
    with fits.open(noiseless_plate.truth) as truth:
        for frame, calib, cframe in _frames(noiseless_plate):
            spectra = calibrate_sky_fibres(frame, calib, cframe)
            expected = truth[f"FLUX_{frame.camera}-{frame.exposure:08d}"].data
            good = np.isfinite(spectra.flux)
            assert good.sum() > 0.5 * good.size / 2
            relative = np.abs(spectra.flux[good] / expected[good] - 1.0)
            assert relative.max() < 1e-3
            checked += good.sum()
    assert checked > 50_000


def test_inverse_variance_is_in_flux_units(noisy_plate: SimulatedPlate) -> None:
    pulls = []
    with fits.open(noisy_plate.truth) as truth:
        for frame, calib, cframe in _frames(noisy_plate):
            spectra = calibrate_sky_fibres(frame, calib, cframe)
            expected = truth[f"FLUX_{frame.camera}-{frame.exposure:08d}"].data
            good = np.isfinite(spectra.flux) & (spectra.ivar > 0)
            pulls.append((spectra.flux[good] - expected[good]) * np.sqrt(spectra.ivar[good]))
    pull = np.concatenate(pulls)
    assert pull.size > 50_000
    assert abs(np.mean(pull)) < 0.02
    assert abs(np.std(pull) - 1.0) < 0.02


def test_masked_pixels_never_leak(noisy_plate: SimulatedPlate) -> None:
    reject = mask_value(DEFAULT_REJECT_FLAGS)
    harmless_seen = 0
    for frame, calib, cframe in _frames(noisy_plate):
        spectra = calibrate_sky_fibres(frame, calib, cframe)
        bad = (spectra.mask & reject) != 0
        assert bad.any()
        assert not np.isfinite(spectra.flux[bad]).any()
        assert not spectra.ivar[bad].any()
        # pixels rejected only by the co-addition are known only from the spCFrame
        combine_only = flagged(cframe.mask[spectra.rows], ["COMBINEREJ"])
        assert combine_only.any()
        assert not np.isfinite(spectra.flux[combine_only]).any()
        # flags outside the rejection list leave the pixel alone
        wave = spectra.wavelength_nm
        window = (wave > 365) & (wave < 635) if frame.camera[0] == "b" else (wave > 565)
        harmless = (spectra.mask == mask_value(["NEARBADPIXEL"])) & window & (wave < 1040)
        harmless_seen += harmless.sum()
        assert np.isfinite(spectra.flux[harmless]).all()
    assert harmless_seen > 0


def test_wavelength_window_is_configurable(noiseless_plate: SimulatedPlate) -> None:
    frame, calib, cframe = next(iter(_frames(noiseless_plate)))
    spectra = calibrate_sky_fibres(frame, calib, cframe, wave_range_nm=(400.0, 500.0))
    finite = np.isfinite(spectra.flux)
    assert finite.any()
    assert spectra.wavelength_nm[finite].min() >= 400.0
    assert spectra.wavelength_nm[finite].max() <= 500.0
    assert (spectra.ivar[~finite] == 0).all()
    doubled = calibrate_sky_fibres(frame, calib, cframe, flux_scale=2.0)
    np.testing.assert_allclose(
        doubled.flux[np.isfinite(doubled.flux)],
        2 * calibrate_sky_fibres(frame, calib, cframe).flux[np.isfinite(doubled.flux)],
    )


def test_frame_without_sky_fibres_is_refused(plate_copy: Path) -> None:
    path = next(plate_copy.glob("spFrame-b1-*.fits"))
    with fits.open(path, mode="update") as hdus:
        hdus[5].data["OBJTYPE"] = "GALAXY"
    frame = read_spframe(path)
    _, calib = read_spfluxcalib(path.with_name(path.name.replace("spFrame", "spFluxcalib")))
    with pytest.raises(InputFileError, match="no sky fibres") as info:
        calibrate_sky_fibres(frame, calib)
    assert info.value.path == path


def test_calibration_of_the_wrong_shape_is_refused(noiseless_plate: SimulatedPlate) -> None:
    frame, calib, _ = next(iter(_frames(noiseless_plate)))
    with pytest.raises(InputFileError, match="calibration image"):
        calibrate_sky_fibres(frame, calib[:, :100])


def test_file_names() -> None:
    assert frame_name("spFrame", "b1", 139379, gzip=True) == "spFrame-b1-00139379.fits.gz"
