"""Settings of the sky application (section ``sky``)."""

from __future__ import annotations

from photonpipe.platform.config import Option, register_section

register_section(
    "sky",
    [
        Option("blue_min_nm", "float", 365.0, "blue cameras: shortest wavelength kept [nm]"),
        Option("blue_max_nm", "float", 635.0, "blue cameras: longest wavelength kept [nm]"),
        Option("red_min_nm", "float", 565.0, "red cameras: shortest wavelength kept [nm]"),
        Option("red_max_nm", "float", 1040.0, "red cameras: longest wavelength kept [nm]"),
        Option(
            "reject_flags",
            "str",
            "FULLREJECT,COMBINEREJ,BADSKYFIBER,NOSKY,BADTRACE,NOPLUG,BADFLAT",
            "SPPIXMASK flags whose pixels become NaN (comma-separated)",
        ),
        Option(
            "flux_scale",
            "float",
            1.0,
            "factor applied to sky fluxes (SkyModelling used 1.027356 with one calibration file)",
            minimum=0.0,
        ),
        Option(
            "checksum",
            "choice",
            "stat",
            "plate input fingerprint: stat (names, sizes, mtimes) or content (SHA-256)",
            choices=("stat", "content"),
        ),
        Option(
            "cameras",
            "str",
            "b1,b2,r1,r2",
            "cameras every exposure must have (comma-separated)",
        ),
        Option(
            "analysis",
            "bool",
            True,
            "measure line strengths, sky brightness, mean spectra and airglow/continuum "
            "separation while building",
        ),
        Option(
            "line_windows",
            "str",
            "",
            "line/continuum-point configuration CSV (empty: the packaged SkyModelling list)",
        ),
    ],
)
