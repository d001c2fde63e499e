import numpy as np
import pytest
from astropy.io import fits

from photonpipe.sky.flux import calibrate_sky_fibres
from photonpipe.sky.formats import read_spcframe, read_spfluxcalib, read_spframe
from photonpipe.sky.simulate import SimulatedPlate


def test_oxygen_green_line_is_where_and_as_strong_as_the_truth_says(
    noiseless_plate: SimulatedPlate,
) -> None:
    path = next(noiseless_plate.directory.glob("spFrame-b1-*.fits"))
    frame = read_spframe(path)
    _, calib = read_spfluxcalib(path.with_name(path.name.replace("spFrame", "spFluxcalib")))
    cframe = read_spcframe(path.with_name(path.name.replace("spFrame", "spCFrame")))
    spectra = calibrate_sky_fibres(frame, calib, cframe)
    with fits.open(noiseless_plate.truth) as truth:
        lines = truth["LINES"].data
        components = truth["COMPONENTS"].data
    green = lines[(lines["GROUP"] == "oi_green") & (lines["EXPOSURE"] == frame.exposure)]
    assert len(green) == 1
    checked = 0
    for i, fibre in enumerate(spectra.fiberid):
        wave = spectra.wavelength_nm[i]
        flux = spectra.flux[i]
        window = np.abs(wave - green["WAVE_NM"][0]) < 0.6
        side = (np.abs(wave - green["WAVE_NM"][0]) > 0.8) & (
            np.abs(wave - green["WAVE_NM"][0]) < 2.0
        )
        if not (np.isfinite(flux[window]).all() and np.isfinite(flux[side]).any()):
            continue
        excess = flux[window] - np.nanmedian(flux[side])
        dlambda_angstrom = np.gradient(wave)[window] * 10.0
        integrated = np.sum(excess * dlambda_angstrom)
        centroid = np.sum(excess * wave[window]) / np.sum(excess)
        row = components[
            (components["FIBERID"] == fibre)
            & (components["CAMERA"] == "b1")
            & (components["EXPOSURE"] == frame.exposure)
        ]
        expected = green["FLUX"][0] * row["FIBRE_LINE_SCALE"][0]
        # centroid within 0.01 nm; flux reduced only by extinction at airmass ~1.02
        assert abs(centroid - green["WAVE_NM"][0]) < 0.01
        assert 0.75 < integrated / expected < 1.0
        checked += 1
    assert checked >= 1


def test_moonlight_only_with_the_moon_up(noiseless_plate: SimulatedPlate) -> None:
    from photonpipe.sky.conditions import exposure_ephemeris

    with fits.open(noiseless_plate.truth) as truth:
        components = truth["COMPONENTS"].data
    header = fits.getheader(next(noiseless_plate.directory.glob("spFrame-b1-*.fits")))
    eph = exposure_ephemeris([(header["TAI-BEG"] + header["TAI-END"]) / 2])
    assert eph.moon_alt[0] < 0  # plate 6627 on MJD 56369 was observed with the Moon down
    assert np.isnan(components["MOON_V_MAG"]).all()
    assert (components["ZODI_S10"] > 0).all()


def test_simulation_is_reproducible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from photonpipe.sky.simulate import simulate_boss

    first = simulate_boss(tmp_path / "a", 1, 7, fibres_per_spectrograph=10, exposures=1)
    second = simulate_boss(tmp_path / "b", 1, 7, fibres_per_spectrograph=10, exposures=1)
    assert (first[0].plate, first[0].mjd) == (second[0].plate, second[0].mjd)
    for path in sorted(first[0].directory.glob("sp*.fits")):
        other = second[0].directory / path.name
        with fits.open(path) as a, fits.open(other) as b:
            np.testing.assert_array_equal(a[0].data, b[0].data)
            assert a[0].header.tostring() == b[0].header.tostring()


def test_moon_up_plates_have_the_moon_up_at_both_phases() -> None:
    """``moon_up`` adds plates whose start has the Moon ≥ 10° up (checked with PyEphem)."""
    import math

    import ephem  # an independent ephemeris
    from astropy.time import Time

    from photonpipe.sky.simulate import MOON_UP_MIN_ALT_DEG, choose_plates

    base = choose_plates(6, 4)
    plates = choose_plates(6, 4, moon_up=8)
    assert len(plates) == 14
    assert set(base) <= set(plates)  # the random draw is unchanged
    observer = ephem.Observer()
    observer.lat, observer.lon, observer.elevation = "32.780361", "-105.820417", 2788.0
    observer.pressure = 0.0  # geometric altitudes, as the conditions
    illumination = []
    for plate in set(plates) - set(base):
        utc = Time(plate.tai_beg / 86400.0, format="mjd", scale="tai").utc
        observer.date = utc.iso.replace("-", "/")
        moon = ephem.Moon(observer)
        assert math.degrees(moon.alt) > MOON_UP_MIN_ALT_DEG - 0.1
        illumination.append(moon.moon_phase)
    assert min(illumination) < 0.5 < max(illumination)
    with pytest.raises(ValueError, match="moon_up"):
        choose_plates(2, 1, moon_up=-1)


def test_plates_stream_one_at_a_time(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """``simulate boss`` writes and hands over each plate before simulating the next."""
    import logging

    from photonpipe.sky.simulate import iter_simulate_boss, simulate_boss

    caplog.set_level(logging.INFO, "photonpipe")
    plates = iter_simulate_boss(tmp_path / "a", 2, 7, fibres_per_spectrograph=10, exposures=1)
    first = next(plates)
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_dir()) == [
        first.directory.name
    ]
    second = next(plates)
    assert second.plate != first.plate
    assert list(plates) == []
    # one summary line (stderr is not a terminal here): 2 plates × 1 exposure × 4 cameras
    lines = [r.getMessage() for r in caplog.records if r.name == "photonpipe.sky.simulate"]
    assert lines == ["simulate boss: 8/8 frames"]
    # the same files as the list-returning call
    listed = simulate_boss(tmp_path / "b", 2, 7, fibres_per_spectrograph=10, exposures=1)
    assert [p.plate for p in listed] == [first.plate, second.plate]
    for plate in listed:
        for path in sorted(plate.directory.iterdir()):
            other = tmp_path / "a" / plate.directory.name / path.name
            assert path.read_bytes() == other.read_bytes(), path.name
