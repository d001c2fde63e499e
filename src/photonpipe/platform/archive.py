"""The archive root: where every product, moved input and database file lives.

Rules this module enforces, so that a pipeline running unattended for years cannot lose or
corrupt a file:

* **Confinement.** Nothing is written, moved or deleted outside the archive root. Relative paths
  (typically built from values in input data: target names, file names) are refused when they
  are absolute, contain ``..``, contain NUL, or lead through a symbolic link out of the root.
* **Atomicity.** Files are written to a temporary file in the destination directory, flushed to
  disk (``fsync``), given their permissions, then renamed over the destination and the
  directory is synced. A reader sees the old file or the new one, never half a file; a write
  that fails or is killed leaves at most a temporary file named ``.*.photonpipe-tmp-*``, which
  :meth:`Archive.clean_temporaries` removes.
* **Moves** are a rename when source and destination share a file system, otherwise a copy that
  is synced and renamed into place before the source is removed.
* **Permissions.** Files and directories get the configured modes and group (what hstlc's
  ``set_permissions`` did for its filesystem).
* Raw inputs outside the root are only ever read (:meth:`Archive.copy_in`), never moved or
  deleted.
"""

from __future__ import annotations

import contextlib
import grp
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from photonpipe.errors import ArchiveError, ConfigError, PathConfinementError

TEMP_MARK = ".photonpipe-tmp-"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def naming_the_file(
    exc: OSError, path: str | os.PathLike[str], temporary: str | os.PathLike[str] | None = None
) -> OSError:
    """Return ``exc``, or the same OS error naming ``path`` instead of nothing or the temporary.

    A write to a full disk (``os.write``, ``fsync``) reports ``ENOSPC`` without a file name,
    and a failed temporary file is named by its hidden name: the error shown to the user must
    say which file could not be written.
    """
    named = exc.filename
    if named is not None and (temporary is None or os.fspath(named) != os.fspath(temporary)):
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), os.fspath(path))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds.

    For products written to a user's chosen path outside an archive (``--out DIR``): a reader
    never sees a half-written file, and if the block raises the temporary file is removed and
    ``path`` is untouched. Inside an archive use :meth:`Archive.atomic_path`, which also
    confines the path and applies the archive's permissions.

    Parameters
    ----------
    path : path-like
        Destination file; its directory must exist.

    Yields
    ------
    Path
        Temporary file in the same directory, with the destination's suffix.
    """
    destination = Path(path)
    temp = destination.with_name(
        f".{destination.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        + "".join(destination.suffixes[-1:])
    )
    try:
        yield temp
        if not temp.exists():
            raise ArchiveError(f"nothing was written for {destination}")
        temp.replace(destination)
    except OSError as exc:
        raise naming_the_file(exc, destination, temp) from None
    finally:
        # OSError, not only FileNotFoundError: on a read-only file system even the unlink of a
        # temporary never created fails, and must not hide the error that matters
        with contextlib.suppress(OSError):
            temp.unlink()


class Archive:
    """An archive root directory with confined, atomic file operations.

    Parameters
    ----------
    root : str or Path
        Archive root directory.
    file_mode : int
        Permission bits of files written (e.g. ``0o644``).
    dir_mode : int
        Permission bits of directories created (e.g. ``0o755``).
    group : str, optional
        Group name to give files and directories (the user must belong to it).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        file_mode: int = 0o644,
        dir_mode: int = 0o755,
        group: str | None = None,
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self.group = group
        self._gid: int | None = None
        if group is not None:
            try:
                self._gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise ConfigError(f"group {group!r} does not exist", "archive.group") from None

    @classmethod
    def from_settings(cls, settings: Any) -> Archive:
        """Create the archive described by the ``archive.*`` settings."""
        return cls(
            settings["archive.root"],
            file_mode=settings["archive.file_mode"],
            dir_mode=settings["archive.dir_mode"],
            group=settings["archive.group"],
        )

    def __repr__(self) -> str:
        return f"Archive({str(self.root)!r})"

    # --- the root ---------------------------------------------------------------------------

    def create(self) -> Path:
        """Create the root (and parents) if needed and check that it is a writable directory.

        Raises
        ------
        ArchiveError
            The root exists but is not a directory, cannot be created, or is not writable.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ArchiveError(f"archive root {self.root} exists and is not a directory")
        if not self.root.exists():
            try:
                self.root.mkdir(parents=True)
            except OSError as exc:
                raise ArchiveError(
                    f"cannot create archive root {self.root}: {exc.strerror}"
                ) from None
            self.set_permissions(self.root)
        self.check_writable()
        return self.root

    def check_writable(self) -> None:
        """Raise :class:`ArchiveError` unless the root is a directory this process can write."""
        if not self.root.is_dir():
            raise ArchiveError(f"archive root {self.root} does not exist")
        probe = self.root / f".{TEMP_MARK}probe-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            probe.touch(exist_ok=False)
            probe.unlink()
        except OSError as exc:
            raise ArchiveError(
                f"archive root {self.root} is not writable: {exc.strerror}"
            ) from None

    # --- confinement ------------------------------------------------------------------------

    @property
    def real_root(self) -> Path:
        """The root with symbolic links resolved."""
        return self.root.resolve()

    def path(self, *parts: str | os.PathLike[str]) -> Path:
        """Return the absolute path of a location inside the archive.

        Parameters
        ----------
        *parts : str or PathLike
            Relative path components, e.g. ``("outputs", targname, filename)``.

        Raises
        ------
        PathConfinementError
            A component is absolute, contains ``..`` or NUL, or the path leads out of the root
            through a symbolic link.
        """
        rel = PurePosixPath()
        for part in parts:
            text = os.fspath(part)
            if "\0" in text:
                raise PathConfinementError(f"path {text!r} contains a NUL character")
            piece = PurePosixPath(text)
            if piece.is_absolute():
                raise PathConfinementError(
                    f"absolute path {text!r} refused: archive paths are relative to {self.root}"
                )
            if ".." in piece.parts:
                raise PathConfinementError(f"path {text!r} refused: it contains '..'")
            rel /= piece
        return self.confine(self.root / rel)

    def confine(self, path: str | os.PathLike[str]) -> Path:
        """Check that an absolute path lies inside the root, following symbolic links.

        Returns
        -------
        Path
            ``path`` (absolute, unresolved) when it is inside the root.

        Raises
        ------
        PathConfinementError
            It is not.
        """
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = candidate.resolve()
        if not real.is_relative_to(self.real_root):
            raise PathConfinementError(f"{candidate} is outside the archive root {self.root}")
        return candidate

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` (absolute, or relative to the root) is inside the root."""
        try:
            self.confine(path)
        except PathConfinementError:
            return False
        return True

    def relative(self, path: str | os.PathLike[str]) -> str:
        """Path relative to the root, POSIX-style (what the database stores)."""
        return self.confine(path).relative_to(self.root).as_posix()

    # --- directories and permissions --------------------------------------------------------

    def makedirs(self, *parts: str | os.PathLike[str]) -> Path:
        """Create a directory inside the archive, with the configured mode and group."""
        target = self.path(*parts)
        missing = []
        cursor = target
        while not cursor.exists():
            missing.append(cursor)
            cursor = cursor.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(exist_ok=True)
            except OSError as exc:
                raise ArchiveError(f"cannot create directory {directory}: {exc.strerror}") from None
            self.set_permissions(directory)
        if not target.is_dir():
            raise ArchiveError(f"{target} exists and is not a directory")
        return target

    def set_permissions(self, path: str | os.PathLike[str], *, recursive: bool = False) -> None:
        """Apply the configured mode and group to a file or directory inside the archive.

        Parameters
        ----------
        path : str or PathLike
            Absolute path inside the root, or path relative to it.
        recursive : bool
            For a directory, also everything below it.
        """
        target = self.confine(path)
        items = [target]
        if recursive and target.is_dir():
            items.extend(target.rglob("*"))
        for item in items:
            if item.is_symlink():
                continue
            mode = self.dir_mode if item.is_dir() else self.file_mode
            try:
                item.chmod(mode)
                if self._gid is not None:
                    os.chown(item, -1, self._gid)
            except OSError as exc:
                raise ArchiveError(f"cannot set permissions of {item}: {exc.strerror}") from None

    # --- atomic writes ----------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic_path(self, *parts: str | os.PathLike[str]) -> Iterator[Path]:
        """Yield a temporary path to write; it replaces the destination when the block succeeds.

        Use this for writers that want a file name (``fits.writeto``, ``savefig``). The
        destination directory is created if needed. If the block raises, the temporary file is
        removed and the destination is untouched.

        Yields
        ------
        Path
            Temporary file in the destination's directory, with the destination's suffix.
        """
        destination = self.path(*parts)
        directory = self.makedirs(destination.parent.relative_to(self.root))
        temp = directory / f".{destination.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        temp = temp.with_name(temp.name + "".join(destination.suffixes[-1:]))
        try:
            yield temp
            if not temp.exists():
                raise ArchiveError(f"nothing was written for {destination}")
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.set_permissions(temp)
            self.confine(destination)  # a symlink may have appeared meanwhile
            temp.replace(destination)
            _fsync_dir(directory)
        except OSError as exc:
            raise naming_the_file(exc, destination, temp) from None
        finally:
            with contextlib.suppress(OSError):  # see atomic_output
                temp.unlink()

    @contextlib.contextmanager
    def open_atomic(self, *parts: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
        """Open a destination for writing atomically (see :meth:`atomic_path`).

        Parameters
        ----------
        *parts : str or PathLike
            Destination relative to the root.
        mode : {"wb", "w"}
            Binary or text (UTF-8).
        """
        if mode not in ("wb", "w"):
            raise ValueError("open_atomic writes with mode 'wb' or 'w'")
        with self.atomic_path(*parts) as temp:
            encoding = None if mode == "wb" else "utf-8"
            with temp.open(mode, encoding=encoding) as handle:
                yield handle
                handle.flush()

    def write_bytes(self, data: bytes, *parts: str | os.PathLike[str]) -> Path:
        """Write bytes atomically to a path inside the archive; return the path."""
        with self.open_atomic(*parts, mode="wb") as handle:
            handle.write(data)
        return self.path(*parts)

    def write_text(self, text: str, *parts: str | os.PathLike[str]) -> Path:
        """Write UTF-8 text atomically to a path inside the archive; return the path."""
        return self.write_bytes(text.encode("utf-8"), *parts)

    # --- moves, copies, removal -------------------------------------------------------------

    def copy_in(self, source: str | os.PathLike[str], *parts: str | os.PathLike[str]) -> Path:
        """Copy a file (e.g. a raw input outside the archive) atomically into the archive.

        The source is only read.
        """
        source = Path(source)
        if not source.is_file():
            raise ArchiveError(f"cannot copy {source}: not a file")
        with self.atomic_path(*parts) as temp:
            shutil.copyfile(source, temp)
        return self.path(*parts)

    def move(
        self,
        source: str | os.PathLike[str],
        *parts: str | os.PathLike[str],
        overwrite: bool = False,
    ) -> Path:
        """Move a file within the archive, atomically.

        Parameters
        ----------
        source : str or PathLike
            File inside the root (absolute, or relative to the root).
        *parts : str or PathLike
            Destination relative to the root.
        overwrite : bool
            Replace an existing destination. Otherwise an existing destination is an error.

        Returns
        -------
        Path
            The destination.
        """
        src = self.confine(source)
        destination = self.path(*parts)
        if not src.is_file() or src.is_symlink():
            raise ArchiveError(f"cannot move {src}: not a regular file")
        if destination.exists() and not overwrite:
            raise ArchiveError(f"cannot move {src} to {destination}: destination exists")
        self.makedirs(destination.parent.relative_to(self.root))
        try:
            if overwrite:
                src.replace(destination)
            else:
                # link + unlink never replaces an existing file, even under a race.
                os.link(src, destination)
                src.unlink()
        except FileExistsError:
            raise ArchiveError(f"cannot move {src} to {destination}: destination exists") from None
        except OSError as exc:
            if exc.errno not in (18, 1):  # EXDEV (other file system), EPERM (no hard links)
                raise ArchiveError(f"cannot move {src} to {destination}: {exc.strerror}") from None
            with self.atomic_path(*parts) as temp:
                shutil.copyfile(src, temp)
            src.unlink()
        _fsync_dir(destination.parent)
        if src.parent != destination.parent:
            _fsync_dir(src.parent)
        self.set_permissions(destination)
        return destination

    def remove(self, *parts: str | os.PathLike[str], missing_ok: bool = False) -> None:
        """Delete a file inside the archive."""
        target = self.path(*parts)
        if target.is_dir() and not target.is_symlink():
            raise ArchiveError(f"refusing to remove directory {target} with remove()")
        try:
            target.unlink()
        except FileNotFoundError:
            if not missing_ok:
                raise ArchiveError(f"cannot remove {target}: no such file") from None

    def clean_temporaries(self, older_than: float = 3600.0) -> list[Path]:
        """Remove temporary files left by interrupted writes.

        Parameters
        ----------
        older_than : float
            Only files not modified for this long are removed, so that writes in progress in
            other processes are left alone [s].

        Returns
        -------
        list of Path
            The files removed.
        """
        removed = []
        cutoff = time.time() - older_than
        for temp in self.root.rglob(f"*{TEMP_MARK}*"):
            try:
                if temp.is_file() and not temp.is_symlink() and temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed.append(temp)
            except FileNotFoundError:
                continue
        return removed
