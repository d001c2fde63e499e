"""NRES instrument facts: sites, cameras, spectrograph models, hand traces, the Th-Ar list.

Everything here is read from the files in ``echelle/data`` (copied from LCO's nres-pipe, see
``data/README.md``) plus one derived constant, :data:`OFF_PLANE_ANGLE_DEG`. The reduction uses
these nominal values as its starting point; the simulator perturbs them (see
:mod:`photonpipe.echelle.simulate`), so a reduction never sees the exact truth.

Coordinates: ``x`` is the full-detector column (0-based, along the dispersion), ``y`` the
full-detector row (0-based, across the orders). A frame read out as a sub-window records its
offset in ``DETSEC``. Order index ``i`` (0–66) is physical order ``m = 52 + i``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import Akima1DInterpolator

#: Out-of-plane angle γ of the beam on the echelle [deg]. Not in nres-pipe's table: derived so
#: that the grating equation m λ = d cos γ (sin α + sin β) with the tabulated groove spacing and
#: incidence puts order 52 at 860 nm and order 118 at 380 nm at the order centres, the published
#: NRES range (380–860 nm); both ends give γ = 16.5 ± 0.1°.
OFF_PLANE_ANGLE_DEG = 16.5

#: Number of fibres and the fibres the hand traces list.
N_FIBRES = 3


@dataclass(frozen=True)
class Site:
    """One NRES unit: site code, unit number and camera name."""

    site: str
    nres: int
    camera: str
    trace_file: str

    @property
    def instrument(self) -> str:
        """Instrument name as in the archive path and INSTRUME (``nres01``)."""
        return f"nres{self.nres:02d}"


#: NRES units whose camera and hand trace are known from nres-pipe's files (trace file headers).
SITES: dict[str, Site] = {
    "lsc": Site("lsc", 1, "fl09", "lsc_trace.2017a.txt"),
    "elp": Site("elp", 2, "fl17", "nres02_trace.2017a.txt"),
    "cpt": Site("cpt", 3, "fl13", "cpt_nres03_trace.2017a.txt"),
}


def site_info(site: str) -> Site:
    """Return the :class:`Site` for a site code, or raise ``KeyError`` naming the known ones."""
    try:
        return SITES[site]
    except KeyError:
        raise KeyError(f"unknown NRES site {site!r} (known: {', '.join(sorted(SITES))})") from None


def site_for_instrument(instrument: str) -> Site:
    """Return the :class:`Site` whose instrument name (``nres01``) is ``instrument``."""
    for info in SITES.values():
        if info.instrument == instrument.lower():
            return info
    raise KeyError(f"unknown NRES instrument {instrument!r}")


def _data_path(*parts: str) -> Path:
    return Path(str(resources.files("photonpipe.echelle").joinpath("data", "/".join(parts))))


@dataclass(frozen=True)
class Spectrograph:
    """Nominal spectrograph model of one site (a row of nres-pipe's spectrographs.csv).

    Attributes
    ----------
    site : str
    mjd : float
        Date from which the row is valid [MJD].
    order0 : int
        Physical order of order index 0 (52).
    n_orders : int
    groove_spacing_um : float
        Echelle groove spacing d [µm].
    incidence_deg : float
        Incidence angle α [deg].
    focal_length_mm : float
        Camera focal length [mm].
    pixel_mm : float
        Pixel size [mm].
    nx : int
        Detector columns.
    """

    site: str
    mjd: float
    order0: int
    n_orders: int
    groove_spacing_um: float
    incidence_deg: float
    focal_length_mm: float
    pixel_mm: float
    nx: int

    def orders(self) -> NDArray[np.int64]:
        """Physical order numbers m of order indices 0 … n_orders − 1."""
        return self.order0 + np.arange(self.n_orders)

    def nominal_wavelength(
        self, x: NDArray[np.float64], m: NDArray[np.float64] | float
    ) -> NDArray[np.float64]:
        """Grating-equation wavelength [Å, vacuum] of full-detector column ``x`` in order ``m``.

        ``β = α + atan((x − x_c) p / f)``, x_c the detector centre; λ = d cos γ (sin α + sin β)/m.
        """
        alpha = math.radians(self.incidence_deg)
        theta = np.arctan(
            (np.asarray(x, dtype=float) - (self.nx - 1) / 2.0)
            * self.pixel_mm
            / self.focal_length_mm
        )
        d_angstrom = self.groove_spacing_um * 1.0e4 * math.cos(math.radians(OFF_PLANE_ANGLE_DEG))
        return np.asarray(
            d_angstrom * (math.sin(alpha) + np.sin(alpha + theta)) / np.asarray(m, dtype=float)
        )


@cache
def _spectrograph_rows() -> tuple[dict[str, str], ...]:
    with _data_path("spectrographs.csv").open() as handle:
        return tuple(
            {key.strip(): value.strip().strip('"').strip() for key, value in row.items()}
            for row in csv.DictReader(handle, skipinitialspace=True)
        )


def spectrograph(site: str, mjd: float | None = None) -> Spectrograph:
    """Return the site's spectrograph model valid at ``mjd`` (latest row not after it).

    Parameters
    ----------
    site : str
        Site code (``lsc``).
    mjd : float, optional
        Observation date [MJD]; None = the latest row of the site.
    """
    rows = [row for row in _spectrograph_rows() if row["Site"] == site]
    if not rows:
        raise KeyError(f"no spectrograph model for site {site!r}")
    rows.sort(key=lambda row: float(row["MJD"]))
    chosen = rows[-1]
    if mjd is not None:
        earlier = [row for row in rows if float(row["MJD"]) <= mjd]
        chosen = earlier[-1] if earlier else rows[0]
    return Spectrograph(
        site=site,
        mjd=float(chosen["MJD"]),
        order0=int(chosen["Ord0"]),
        n_orders=int(chosen["Nord"]),
        groove_spacing_um=float(chosen["GrSpc"]),
        incidence_deg=float(chosen["GrInc"]),
        focal_length_mm=float(chosen["FL"]),
        pixel_mm=float(chosen["PixSiz"]),
        nx=int(chosen["Nx"]),
    )


@dataclass(frozen=True)
class Camera:
    """CCD parameters from nres-pipe's ccds.csv: size, gain [e⁻/ADU], read noise [e⁻]."""

    name: str
    nx: int
    ny: int
    gain: float
    read_noise: float


def camera(name: str) -> Camera:
    """Return the :class:`Camera` named ``name`` (``fl09``)."""
    with _data_path("ccds.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["camera"].strip('"') == name:
                return Camera(
                    name, int(row["nx"]), int(row["ny"]), float(row["gain"]), float(row["rdnois"])
                )
    raise KeyError(f"unknown NRES camera {name!r}")


@dataclass(frozen=True)
class HandTrace:
    """A hand-made starting trace: order centre y at a few columns, per fibre.

    Attributes
    ----------
    x_nodes : ndarray, shape (n_nodes,)
        Columns of the measurements [px].
    orders : ndarray, shape (n_listed,)
        Order indices listed.
    y : dict[int, ndarray], shape (n_listed, n_nodes) each
        Centre rows per fibre [px].
    """

    x_nodes: NDArray[np.float64]
    orders: NDArray[np.int64]
    y: dict[int, NDArray[np.float64]]

    def centres(self, fibre: int, n_orders: int = 67) -> NDArray[np.float64]:
        """Centre y at ``x_nodes`` for every order index 0 … n_orders − 1.

        The listed orders are taken as exact and interpolated in order index with Akima's
        piecewise cubic (local, so one listed order does not swing the others).

        Returns
        -------
        ndarray, shape (n_orders, n_nodes)
        """
        rows = self.y[fibre]
        out = np.empty((n_orders, self.x_nodes.size))
        index = np.arange(n_orders, dtype=float)
        for node in range(self.x_nodes.size):
            out[:, node] = Akima1DInterpolator(
                self.orders.astype(float), rows[:, node], extrapolate=True
            )(index)
        return out


def read_hand_trace(path: str | Path) -> HandTrace:
    """Read a hand trace file in nres-pipe's format (title line, ``nfib 2 0 1``, header, rows).

    Raises
    ------
    ValueError
        If the file does not have that layout.
    """
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) < 4 or lines[1][0] != "nfib" or lines[2][0] != "iord":
        raise ValueError(f"{path}: not a hand trace file (expected 'nfib' and 'iord' lines)")
    fibres = [int(value) for value in lines[1][2:]]
    x_nodes = np.array([float(value) for value in lines[2][1:]])
    rows = np.array([[float(value) for value in line] for line in lines[3:]])
    if rows.shape[1] != x_nodes.size + 1 or rows.shape[0] % len(fibres):
        raise ValueError(f"{path}: trace rows do not match the header")
    orders = rows[:: len(fibres), 0].astype(np.int64)
    y = {fibre: rows[k :: len(fibres), 1:] for k, fibre in enumerate(fibres)}
    return HandTrace(x_nodes, orders, y)


def hand_trace_path(site: str) -> Path:
    """Return the path of the packaged hand trace file of a site."""
    return _data_path("traces", site_info(site).trace_file)


def hand_trace(site: str) -> HandTrace:
    """Return the packaged hand trace of a site."""
    return read_hand_trace(hand_trace_path(site))


@cache
def thar_lines() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Redman et al. (2014) Th-Ar lines: vacuum wavelength [Å] and relative brightness."""
    data = np.loadtxt(_data_path("thar_redman2014_vacuum.txt"), skiprows=2)
    return data[:, 0] * 10.0, data[:, 1]


#: Lines of two lists closer than this [Å] are the same line.
SAME_LINE_ANGSTROM = 0.01
#: A Redman line whose ESO wavelength differs from it by more than this [m/s] (after the two
#: lists' local mean offset) is dropped: two independent measurements disagree.
LIST_DISAGREEMENT_MS = 25.0


@dataclass(frozen=True)
class ReferenceLines:
    """A Th-Ar reference line list for the wavelength solution.

    Attributes
    ----------
    wavelength : ndarray
        Vacuum wavelengths [Å], sorted.
    uncertainty : ndarray
        1σ of each wavelength [Å].
    brightness : ndarray
        Relative brightness (Redman et al. 2014's scale).
    vetted : ndarray of bool
        Also in nres-pipe's vetted list.
    neighbours : ndarray, optional
        Vacuum wavelengths [Å] of every known lamp line, used or not (a line dropped from
        the list still blends with its neighbours); empty = ``wavelength``.
    neighbour_brightness : ndarray, optional
        Their brightness (NaN unknown).
    """

    wavelength: NDArray[np.float64]
    uncertainty: NDArray[np.float64]
    brightness: NDArray[np.float64]
    vetted: NDArray[np.bool_]
    neighbours: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    neighbour_brightness: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))


def _nearest(sorted_values: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.intp]:
    index = np.clip(np.searchsorted(sorted_values, values), 1, sorted_values.size - 1)
    index -= np.abs(sorted_values[index - 1] - values) < np.abs(sorted_values[index] - values)
    return np.asarray(index)


@cache
def thar_reference() -> ReferenceLines:
    """Return the Th-Ar reference list of the wavelength solution (Redman et al. 2014, vetted).

    Redman et al. (2014) lines with their own uncertainties, less those that the ESO UVES
    Th-Ar atlas (an independent measurement of the same lines, 1162 in common) places more
    than :data:`LIST_DISAGREEMENT_MS` from Redman's wavelength after the two lists' mean
    offset within ±300 Å (ESO − Redman ≈ −17 m/s, spread 15–30 m/s): such lines are blends or
    unstable in one of the lamps (249 of 1734 lines, 30 of them among nres-pipe's vetted
    lines). Lines the ESO atlas does not list are kept.
    nres-pipe's 188 vetted lines are all Redman lines; they are marked. The ESO atlas's own
    1293 lines without a Redman counterpart are not added (on the real lamp spectrum,
    ``tests/data/echelle``, they scatter ≈ 3× more than Redman's about the solution), but
    they and the dropped lines are kept as ``neighbours``: a used line near them is a blend.
    """
    redman = np.loadtxt(_data_path("thar_redman2014_vacuum.txt"), skiprows=2)
    order = np.argsort(redman[:, 0])
    wave, bright, error = redman[order, 0] * 10.0, redman[order, 1], redman[order, 2] * 10.0
    vetted_list = np.loadtxt(_data_path("thar_vetted.txt"), skiprows=2)[:, 0] * 10.0
    nearest = _nearest(wave, vetted_list)
    vetted = np.zeros(wave.size, bool)
    vetted[nearest[np.abs(wave[nearest] - vetted_list) < SAME_LINE_ANGSTROM]] = True
    eso = np.sort(np.loadtxt(_data_path("thar_eso_atlas_vacuum.txt"))[:, 1])
    partner = _nearest(eso, wave)
    offset = (eso[partner] - wave) / wave * 299_792_458.0
    common = np.abs(eso[partner] - wave) < SAME_LINE_ANGSTROM
    local = np.array([np.median(offset[common & (np.abs(wave - w) < 300.0)]) for w in wave])
    keep = ~common | (np.abs(offset - local) <= LIST_DISAGREEMENT_MS)
    # every line of both lists can blend with a used one (ESO-only lines: brightness unknown)
    eso_only = eso[np.abs(wave[_nearest(wave, eso)] - eso) >= SAME_LINE_ANGSTROM]
    every = np.concatenate([wave, eso_only])
    every_bright = np.concatenate([bright, np.full(eso_only.size, np.nan)])
    order = np.argsort(every)
    return ReferenceLines(
        wave[keep], error[keep], bright[keep], vetted[keep], every[order], every_bright[order]
    )


@dataclass(frozen=True)
class Target:
    """A star from nres-pipe's targets.csv."""

    name: str
    ra_deg: float
    dec_deg: float
    vmag: float
    rv_kms: float
    teff: float
    pmra_mas_yr: float = 0.0
    pmde_mas_yr: float = 0.0


def targets_csv_rows() -> list[dict[str, str]]:
    """Return the rows of targets.csv (column → text) behind :func:`targets`, in order."""
    with _data_path("targets.csv").open() as handle:
        return [
            row
            for row in csv.DictReader(handle)
            if float(row["RV"]) > -99 and float(row["Teff"]) > 0
        ]


def targets() -> list[Target]:
    """All stars of targets.csv with a known RV and Teff."""
    out = []
    with _data_path("targets.csv").open() as handle:
        for row in csv.DictReader(handle):
            rv, teff = float(row["RV"]), float(row["Teff"])
            if rv <= -99 or teff <= 0:
                continue
            out.append(
                Target(
                    row["Name"],
                    float(row["RA(deg)"]),
                    float(row["Dec(deg)"]),
                    float(row["Vmag"]),
                    rv,
                    teff,
                    *(0.0 if float(row[k]) <= -99 else float(row[k]) for k in ("PMRA", "PMDE")),
                )
            )
    return out
