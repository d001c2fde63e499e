"""Settings of the light-curve application (section ``lightcurve``)."""

from __future__ import annotations

from photonpipe.errors import ConfigError
from photonpipe.platform.config import Option, register_section

register_section(
    "lightcurve",
    [
        Option("step", "float", 1.0, "light-curve bin width [s]", minimum=0),
        Option(
            "exclude",
            "str",
            "1208-1225,1298-1312",
            "wavelength windows left out, 'min-max' pairs separated by commas [Angstrom] "
            "(default: geocoronal Lyman alpha and O I); empty for none",
        ),
        Option("fap_threshold", "float", 0.01, "false-alarm probability of a significant period"),
        Option(
            "ephemeris",
            "str",
            "builtin",
            "solar-system ephemeris of TIME_BJD_TDB: 'builtin' (astropy's, no files) or the path "
            "of a local JPL kernel (DE4xx .bsp, needs jplephem; nothing is downloaded)",
        ),
        Option(
            "ingest_dir",
            "path",
            None,
            "ingest directory of the archive pipeline, inside the archive root (relative paths: "
            "to the settings file's directory, else to the working directory); unset for "
            "<root>/lightcurves/ingest",
            nullable=True,
        ),
    ],
)


def parse_windows(text: str) -> tuple[tuple[float, float], ...]:
    """Parse ``"1208-1225,1298-1312"`` into ((1208, 1225), (1298, 1312)) [Å].

    Raises
    ------
    ConfigError
        A window is not ``min-max`` with min < max.
    """
    windows = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            low_text, high_text = part.split("-")
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise ConfigError(f"wavelength window {part!r} is not 'min-max'") from None
        if not high > low:
            raise ConfigError(f"wavelength window {part!r}: max must exceed min")
        windows.append((low, high))
    return tuple(windows)
