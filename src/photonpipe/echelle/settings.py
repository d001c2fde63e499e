"""Settings of the echelle application (section ``echelle``)."""

from __future__ import annotations

from photonpipe.platform.config import Option, register_section

register_section(
    "echelle",
    [
        Option(
            "validity_days",
            "float",
            2.0,
            "a master calibration is valid this long either side of its date [days]",
            minimum=0.0,
        ),
        Option("half_width", "int", 6, "extraction aperture half-width [px]", minimum=1),
        Option(
            "x_degree", "int", 4, "wavelength solution: Legendre degree along the order", minimum=1
        ),
        Option(
            "m_degree", "int", 2, "wavelength solution: Legendre degree in order number", minimum=0
        ),
        Option(
            "line_threshold", "float", 20.0, "arc line detection threshold [sigma]", minimum=3.0
        ),
        Option(
            "blind_trace",
            "bool",
            False,
            "night/trace-refine: find the traces blind on the flats instead of starting from the"
            " site's hand trace",
        ),
    ],
)
