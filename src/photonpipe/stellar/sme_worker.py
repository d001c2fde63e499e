"""The PySME worker process: runs the SME library for :mod:`photonpipe.stellar.sme`.

Started as ``python -m photonpipe.stellar.sme_worker`` with ``HOME`` set to a photonpipe cache
directory, because importing ``pysme`` creates ``~/.sme`` (configuration, decompressed
hydrogen-line profiles) and prints to standard output. The worker imports it with standard
output sent to standard error, refuses every network connection (the SME library needs none:
the atmosphere, abundances and lines are all given), and then answers one JSON request per line
on standard input with one JSON line on standard output (the library's own prints, which go to
file descriptor 1, are sent to standard error).

Requests (``op``):

* ``version`` -- ``{"pysme": ..., "library": ...}``;
* ``network`` -- ``{"blocked": true}`` when connections are refused (they always are);
* ``ews`` -- equivalent widths [mÅ] of lines, each alone (no blending), from the intensity at
  Gauss-Legendre μ points integrated to flux, normalised by the continuum and integrated over
  ± ``window`` Å;
* ``synth`` -- the normalised flux of a region with all the lines given.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from typing import Any

import numpy as np


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise OSError("the photonpipe SME worker makes no network connections")


class _NoNetworkSocket(socket.socket):
    """A socket that cannot connect (subclassable, unlike a function, for ssl)."""

    def connect(self, *args: Any, **kwargs: Any) -> None:
        _no_network()

    def connect_ex(self, *args: Any, **kwargs: Any) -> int:
        _no_network()
        return 1


def _atmosphere(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "depth": "RHOX",
        "RHOX": np.asarray(model["rhox"], dtype=float),
        "temp": np.asarray(model["temperature"], dtype=float),
        "xne": np.asarray(model["xne"], dtype=float),
        "xna": np.asarray(model["xna"], dtype=float),
        "rho": np.asarray(model["rho"], dtype=float),
        "wlstd": 5000.0,
        "opflag": np.ones(20, dtype=int),
        "geom": "PP",
    }


class Worker:
    """Holds the SME library between requests."""

    def __init__(self) -> None:
        with contextlib.redirect_stdout(sys.stderr):
            import pandas as pd
            import pysme
            from pysme.abund import Abund
            from pysme.linelist.linelist import LineList
            from pysme.sme_synth import SME_DLL

        self.pd, self.pysme, self.Abund, self.LineList = pd, pysme, Abund, LineList
        self.dll = SME_DLL()

    def network(self, request: dict[str, Any]) -> dict[str, Any]:
        """Report whether network connections are refused."""
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1).close()
        except OSError as exc:
            return {"blocked": "no network connections" in str(exc)}
        return {"blocked": False}

    def version(self, request: dict[str, Any]) -> dict[str, Any]:
        """PySME and SME library versions."""
        return {"pysme": self.pysme.__version__, "library": self.dll.SMELibraryVersion()}

    def _setup(self, request: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        frame = self.pd.DataFrame(
            {
                "species": [ln["species"] for ln in lines],
                "atom_number": [1.0] * len(lines),
                "ionization": [float(ln["ion"]) for ln in lines],
                "wlcent": [ln["wavelength"] for ln in lines],
                "excit": [ln["expot"] for ln in lines],
                "gflog": [ln["loggf"] for ln in lines],
                "gamrad": [ln["gamrad"] for ln in lines],
                "gamqst": [ln["gamqst"] for ln in lines],
                "gamvw": [ln["gamvw"] for ln in lines],
            }
        )
        dll = self.dll
        dll.InputLineList(self.LineList(frame, lineformat="short"))
        dll.InputModel(
            request["teff"], request["logg"], request["vt"], _atmosphere(request["model"])
        )
        pattern = np.full(99, np.nan)
        for z, value in request["abundances"].items():
            pattern[int(z) - 1] = value
        dll.InputAbund(self.Abund(monh=0.0, pattern=pattern, type="H=12"))
        dll.Ionization(int(request["settings"]["ionization"]))
        dll.SetVWscale(float(request["settings"]["vdw_scale"]))
        dll.SetH2broad(bool(request["settings"]["h2_broadening"]))

    def _flux(self, request: dict[str, Any], start: float, end: float) -> tuple[Any, Any]:
        settings = request["settings"]
        nodes, weights = np.polynomial.legendre.leggauss(int(settings["mu_points"]))
        mu = 0.5 * (nodes + 1.0)
        dll = self.dll
        dll.InputWaveRange(start, end)
        dll.Opacity()
        _, wave, intensity, continuum = dll.Transf(
            mu, accrt=float(settings["accrt"]), accwi=float(settings["accwi"])
        )
        w = 0.5 * weights * mu
        return wave, (w @ intensity) / (w @ continuum)

    def ews(self, request: dict[str, Any]) -> dict[str, Any]:
        """Equivalent widths [mÅ] of the request's lines, each alone."""
        window = float(request["settings"]["window"])
        lines = request["lines"]
        result = [float("nan")] * len(lines)
        # lines more than two windows apart share one setup (they cannot blend in a window)
        groups: list[list[int]] = []
        for index in sorted(range(len(lines)), key=lambda i: lines[i]["wavelength"]):
            for group in groups:
                if lines[index]["wavelength"] - lines[group[-1]]["wavelength"] > 2.0 * window:
                    group.append(index)
                    break
            else:
                groups.append([index])
        for group in groups:  # each group is in wavelength order, as SME needs
            self._setup(request, [lines[i] for i in group])
            for i in group:
                centre = lines[i]["wavelength"]
                wave, flux = self._flux(request, centre - window, centre + window)
                result[i] = float(np.trapezoid(1.0 - flux, wave) * 1000.0)
        return {"ews": result}

    def synth(self, request: dict[str, Any]) -> dict[str, Any]:
        """Normalised flux of the request's region on a uniform grid."""
        self._setup(request, sorted(request["lines"], key=lambda ln: ln["wavelength"]))
        start, end = request["range"]
        wave, flux = self._flux(request, start, end)
        grid = np.arange(start, end + 0.5 * request["step"], request["step"])
        return {"wavelength": grid.tolist(), "flux": np.interp(grid, wave, flux).tolist()}


def main() -> None:
    """Answer requests until standard input closes."""
    socket.socket = _NoNetworkSocket  # type: ignore[misc]
    socket.create_connection = _no_network
    # the SME library prints to file descriptor 1 (warnings about lines): the replies go to a
    # copy of it, and descriptor 1 itself to standard error
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)
    worker = Worker()
    for raw in sys.stdin:
        try:
            request = json.loads(raw)
            reply = getattr(worker, request["op"])(request)
            reply["ok"] = True
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
