"""The issue's RV accuracy test on full-size NRES frames (4096², 67 orders).

HD 1461 observed 4 × 2000 s (the ZERO frames, S/N ≈ 250) then 16 × 300 s at S/N ≈ 100 with
injected barycentric RVs from −100 to +100 km/s; the night is reduced, the ZERO stacked from the
four long frames, and every short frame's RV measured against it. Goals: RV error ≤ 10 m/s RMS
and reported uncertainties consistent with the errors (pull width 0.7–1.4).

Full frames, because the small test window (15 orders × 1024 columns) holds 1/18 of a frame's
Doppler information: there the photon noise alone is ≈ 7.5 m/s per frame (measured with a
noiseless template), so a 10 m/s RMS over a few frames tests luck more than the code. Here it is
≈ 2.5 m/s. About 3 minutes on two cores (7 under load): slow, run by .ci/run when time allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io import fits

from helpers.echelle_rv import reduced_rv_night
from photonpipe.echelle import rv as erv
from photonpipe.echelle import templates as etemplates
from photonpipe.echelle.simulate import NightPlan

HD1461_RV = -10.086
INJECTED = [float(v) for v in np.linspace(-100.0, 100.0, 16)]


@dataclass
class FullNight:
    """Errors against the injected RVs [km/s], reported uncertainties, S/N, RV times per frame."""

    errors: np.ndarray
    sigmas: np.ndarray
    snr: np.ndarray
    n_orders: np.ndarray


@pytest.fixture(scope="module")
def full_night(tmp_path_factory: pytest.TempPathFactory) -> FullNight:
    root = tmp_path_factory.mktemp("nres-rv-full")
    night = reduced_rv_night(
        root,
        NightPlan(
            biases=3,
            darks=3,
            flats_per_pair=2,
            arcs_per_pair=1,
            science_rv_kms=[HD1461_RV] * 4 + INJECTED,
            science_exptimes=[2000.0] * 4 + [300.0] * len(INJECTED),
            target="HD1461",
        ),
        seed=33,
        small=False,
        workers=2,
    )
    archive, database, simulated, spectra = (
        night.archive,
        night.database,
        night.simulated,
        night.spectra,
    )
    assert len(spectra) == 4 + len(INJECTED)
    first, last = (
        datetime.fromisoformat(str(fits.getheader(p)["DATE-OBS"])).replace(tzinfo=UTC)
        for p in (spectra[0], spectra[3])
    )
    zero = etemplates.make_zero(
        archive,
        database,
        site="lsc",
        instrument_name="nres01",
        camera="fl09",
        target="HD1461",
        start=first,
        end=last,
    )
    assert len(zero.inputs) == 4
    measured = erv.measure_files(archive, database, spectra[4:])
    truth = {str(f["file"]): float(f["rv"]) for f in simulated.truth.frames if "rv" in f}  # type: ignore[arg-type]
    errors, sigmas, snr, n_orders = [], [], [], []
    for path in spectra[4:]:
        velocity = measured[str(path)]
        assert velocity.rv_kms is not None, velocity.reason
        assert velocity.error_kms is not None
        assert velocity.result is not None
        raw = str(fits.getheader(path)["RAWFILE"])
        errors.append(velocity.rv_kms - truth[raw])
        sigmas.append(velocity.error_kms)
        snr.append(velocity.snr)
        n_orders.append(len({b.order for b in velocity.result.blocks if b.used}))
    return FullNight(*(np.array(v, dtype=float) for v in (errors, sigmas, snr, n_orders)))


@pytest.mark.slow
def test_rv_accuracy_goal_on_full_frames(full_night: FullNight) -> None:
    assert np.all((full_night.snr > 80.0) & (full_night.snr < 125.0))  # the S/N 100
    assert np.all(full_night.n_orders >= 40)  # most of the 67 orders give blocks
    rms = float(np.sqrt(np.mean(full_night.errors**2)))
    assert rms <= 0.010  # km/s
    pull = full_night.errors / full_night.sigmas
    assert 0.7 <= float(np.std(pull)) <= 1.4
    # the uncertainties are those of a photon-limited measurement at this S/N, not inflated
    assert float(np.median(full_night.sigmas)) < 0.006
