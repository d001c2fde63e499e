"""Every exception class photonpipe defines is a PhotonpipeError (one line, an exit code)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import photonpipe
from photonpipe.errors import PhotonpipeError

#: Modules not imported here: Alembic's environment runs a migration when imported.
SKIPPED_MODULES = ("photonpipe.platform.migrations",)

#: Exception classes that are not (yet) PhotonpipeErrors, each with the reason. Must only shrink.
NOT_YET_PHOTONPIPE_ERRORS: set[str] = set()


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(photonpipe.__path__, "photonpipe."):
        if info.name.startswith(SKIPPED_MODULES) or info.name == "photonpipe.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_is_a_photonpipe_error() -> None:
    classes = _exception_classes()
    # the walk reaches every layer (a broken walk must not pass by finding nothing)
    for expected in (
        "photonpipe.errors.InputFileError",
        "photonpipe.spectra.linefit.LineFitError",
        "photonpipe.lightcurves.formats.MissingKeywordError",
        "photonpipe.echelle.stacking.CalibrationError",
        "photonpipe.stellar.session.SessionError",
        "photonpipe.web.workbench.ActionError",
    ):
        assert expected in classes
    outside = {name for name, cls in classes.items() if not issubclass(cls, PhotonpipeError)}
    assert outside == NOT_YET_PHOTONPIPE_ERRORS


def test_spectra_errors_are_still_value_errors() -> None:
    from photonpipe.spectra.barycentric import EphemerisError, ObservationMetadataError
    from photonpipe.spectra.continuum import ContinuumError
    from photonpipe.spectra.linefit import LineFitError
    from photonpipe.spectra.rv import RadialVelocityError
    from photonpipe.spectra.xcorr import CrossCorrelationError

    for cls in (
        EphemerisError,
        ObservationMetadataError,
        ContinuumError,
        LineFitError,
        RadialVelocityError,
        CrossCorrelationError,
    ):
        assert issubclass(cls, PhotonpipeError)
        assert issubclass(cls, ValueError)
    assert str(ContinuumError("too few usable pixels")) == "too few usable pixels"
    assert ObservationMetadataError("no DATE-OBS").exit_code == 2
    assert ContinuumError("x").exit_code == 1


def test_an_error_message_is_one_line() -> None:
    """A library's multi-line reason quoted in an error still gives one line.

    Before: a corrupt spCFrame header gave a two-line "corrupt FITS file (...)" error in the
    sky build's log and summary (astropy's reason has a newline).
    """
    from photonpipe.errors import InputFileError

    error = InputFileError("x.fits", "corrupt FITS file (keyword is invalid:\nxxxx)\n")
    assert str(error) == "x.fits: corrupt FITS file (keyword is invalid: xxxx)"
    assert "\n" not in str(PhotonpipeError("a\r\nb"))
