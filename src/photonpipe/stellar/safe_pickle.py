"""Pickles of plain data only: the restricted reader and the checked writer of ``session.pkl``.

A session file is often received from a colleague, so its ``session.pkl`` must never be able to
run code. :func:`loads_plain` uses an unpickler whose ``find_class`` knows only the few callables
needed to rebuild plain data written with pickle protocol 2:

* ``set``, ``frozenset`` and ``complex`` (protocol 2 has no opcode for them);
* ``_codecs.encode(text, "latin1")`` and ``bytes()``, which protocol 2 uses for ``bytes``; any
  other codec, and ``bytes`` with arguments, are refused;
* numpy arrays (``numpy.core.multiarray._reconstruct`` with the class ``numpy.ndarray`` exactly)
  and numpy dtypes of kind bool, integer, unsigned, float, complex, unicode or bytes
  (``numpy.dtype``); structured and object dtypes are refused;
* numpy scalars of those dtypes (``numpy.core.multiarray.scalar``).

Every other global (a class, ``os.system``, ``builtins.eval`` …) is refused with
:class:`UnsafePickleError` *before* anything is called, so a crafted ``__reduce__`` payload never
runs. Lists, tuples, dicts, strings, numbers, booleans and ``None`` need no global at all.

:func:`dumps_plain` checks that a value is made only of those types before pickling it, so a
session that would not load is never written.
"""

from __future__ import annotations

import _codecs
import io
import pickle
from typing import Any, ClassVar

import numpy as np

from photonpipe.errors import EXIT_USAGE, PhotonpipeError

PROTOCOL = 2

#: dtype kinds accepted in arrays and scalars: bool, int, uint, float, complex, str, bytes.
ALLOWED_DTYPE_KINDS = frozenset("biufcUS")


class UnsafePickleError(PhotonpipeError):
    """A pickle holds something other than plain data (and was refused, not constructed)."""

    exit_code = EXIT_USAGE  # the user's input or request, not failed work


def _check_dtype(dtype: Any) -> np.dtype[Any]:
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"expected a numpy dtype, got {type(dtype).__name__}")
    if dtype.kind not in ALLOWED_DTYPE_KINDS or dtype.fields is not None or dtype.subdtype:
        raise UnsafePickleError(f"numpy dtype {dtype!s} is not allowed (only plain numeric/text)")
    return dtype


def _safe_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafePickleError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return bytes(_codecs.encode(text, "latin1"))


class _EmptyArray:
    """Placeholder pushed by ``_reconstruct``; the BUILD that follows turns it into an array.

    The pickle may memoize the placeholder before its BUILD (an array referenced twice, e.g.
    one result stored under two keys); ``memo_keys`` lists those memo entries, which the BUILD
    points at the built array too.
    """

    def __init__(self) -> None:
        self.memo_keys: list[Any] = []


def _safe_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> _EmptyArray:
    if cls is not np.ndarray:
        raise UnsafePickleError("only plain numpy.ndarray may be rebuilt, not a subclass")
    if shape != (0,) or not isinstance(dtype_code, bytes):
        raise UnsafePickleError("malformed numpy array reconstruction arguments")
    return _EmptyArray()


def _safe_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype[Any]:
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise UnsafePickleError("malformed numpy dtype arguments")
    if len(spec) > 16:
        raise UnsafePickleError(f"numpy dtype {spec[:16]!r}... is not allowed")
    try:
        dtype = np.dtype(spec)
    except TypeError as exc:
        raise UnsafePickleError(f"unknown numpy dtype {spec!r}") from exc
    return _check_dtype(dtype)


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError("malformed numpy scalar")
    return np.frombuffer(data, dtype=dtype)[0]


def _safe_bytes(*args: Any) -> bytes:
    # protocol 2 writes an empty bytes object as bytes()
    if args:
        raise UnsafePickleError("bytes() with arguments is not allowed")
    return b""


def _safe_set(items: Any = ()) -> set[Any]:
    if not isinstance(items, list):
        raise UnsafePickleError("malformed set")
    return set(items)


def _safe_frozenset(items: Any = ()) -> frozenset[Any]:
    if not isinstance(items, list):
        raise UnsafePickleError("malformed frozenset")
    return frozenset(items)


def _safe_complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if not isinstance(real, float | int) or not isinstance(imag, float | int):
        raise UnsafePickleError("malformed complex number")
    return complex(real, imag)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): _safe_set,
    ("__builtin__", "set"): _safe_set,
    ("builtins", "frozenset"): _safe_frozenset,
    ("__builtin__", "frozenset"): _safe_frozenset,
    ("builtins", "complex"): _safe_complex,
    ("__builtin__", "complex"): _safe_complex,
    ("builtins", "bytes"): _safe_bytes,
    ("__builtin__", "bytes"): _safe_bytes,
    ("_codecs", "encode"): _safe_encode,
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    ("numpy", "dtype"): _safe_dtype,
    # Only ever an argument of _safe_reconstruct, which checks it; NEWOBJ is refused.
    ("numpy", "ndarray"): np.ndarray,
}


def _build_dtype(dtype: np.dtype[Any], state: Any) -> np.dtype[Any]:
    """Apply a pickled dtype state: only the byte order of a plain dtype may change."""
    if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise UnsafePickleError("malformed numpy dtype state")
    if state[3] is not None or state[4] is not None or state[2] is not None:
        raise UnsafePickleError("structured or sub-array numpy dtypes are not allowed")
    byteorder = state[1]
    if byteorder not in ("<", ">", "|", "="):
        raise UnsafePickleError("malformed numpy dtype byte order")
    built = dtype.newbyteorder(byteorder) if byteorder != "|" else dtype
    return _check_dtype(built)


def _build_array(state: Any) -> np.ndarray[Any, Any]:
    """Rebuild an array from its pickled state after checking shape, dtype and data size."""
    if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
        raise UnsafePickleError("malformed numpy array state")
    _, shape, dtype, fortran, raw = state
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise UnsafePickleError("malformed numpy array shape")
    _check_dtype(dtype)
    if not isinstance(fortran, bool) or not isinstance(raw, bytes):
        raise UnsafePickleError("malformed numpy array data")
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise UnsafePickleError("numpy array data size does not match its shape and dtype")
    flat = np.frombuffer(raw, dtype=dtype)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


def _refuse_opcode(self: Any) -> None:
    raise UnsafePickleError("object construction opcodes are not allowed in session files")


def _load_build(self: Any) -> None:
    state = self.stack.pop()
    target = self.stack[-1]
    if isinstance(target, _EmptyArray):
        array = _build_array(state)
        self.stack[-1] = array
        for key in target.memo_keys:
            self.memo[key] = array
    elif isinstance(target, np.dtype):
        self.stack[-1] = _build_dtype(target, state)
    else:
        raise UnsafePickleError(f"cannot set the state of a {type(target).__name__}")


def _memoizing(load: Any) -> Any:
    """Wrap a memo opcode so that a memoized array placeholder knows its memo key."""

    def load_and_note(self: Any) -> None:
        load(self)
        top = self.stack[-1] if self.stack else None
        if isinstance(top, _EmptyArray):
            top.memo_keys.append(next(reversed(self.memo)))

    return load_and_note


class _RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler with a whitelist of globals and checked BUILD steps."""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build
    for _opcode in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.INST, pickle.OBJ):
        dispatch[_opcode[0]] = _refuse_opcode
    for _opcode in (pickle.PUT, pickle.BINPUT, pickle.LONG_BINPUT, pickle.MEMOIZE):
        dispatch[_opcode[0]] = _memoizing(dispatch[_opcode[0]])

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load {module}.{name}: session files may hold only plain data"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent references are not allowed in session files")


def _check_loaded(value: Any) -> None:
    """Verify after loading that every object is plain data (arrays have allowed dtypes).

    Shared sub-objects (pickle memo references) are visited once, so a crafted pickle of
    nested references to the same list cannot make the check take exponential time.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        if item is None or isinstance(item, bool | int | float | complex | str | bytes):
            continue
        if isinstance(item, np.ndarray):
            if type(item) is not np.ndarray:
                raise UnsafePickleError("array subclass in session data")
            _check_dtype(item.dtype)
            continue
        if isinstance(item, np.generic):
            _check_dtype(item.dtype)
            continue
        if not isinstance(item, list | tuple | set | frozenset | dict):
            raise UnsafePickleError(f"object of type {type(item).__name__} in session data")
        if id(item) in seen:
            continue
        seen.add(id(item))
        if depth > 200:
            raise UnsafePickleError("session data nested too deeply")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
        stack.extend((child, depth + 1) for child in children)


def loads_plain(data: bytes) -> Any:
    """Unpickle plain data, refusing anything that is not a plain container, scalar or array.

    Parameters
    ----------
    data : bytes
        Pickle stream (any protocol; photonpipe writes protocol 2).

    Returns
    -------
    object
        The plain data (dicts, lists, tuples, sets, str, bytes, numbers, bool, None, arrays).

    Raises
    ------
    UnsafePickleError
        The stream names a global that is not allowed, or is malformed. Nothing it names is
        called or constructed.
    """
    try:
        value = _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise UnsafePickleError(f"corrupt pickle: {exc}") from exc
    except (AttributeError, KeyError, RecursionError, MemoryError) as exc:
        raise UnsafePickleError(f"corrupt pickle: {type(exc).__name__}") from exc
    _check_loaded(value)
    return value


def check_plain(value: Any, where: str = "session") -> None:
    """Raise :class:`UnsafePickleError` if ``value`` is not made only of plain data.

    Parameters
    ----------
    value : object
        Data about to be saved.
    where : str
        Path of ``value`` in the session, for the message.
    """
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return
    if isinstance(value, np.ndarray):
        if type(value) is not np.ndarray:
            raise UnsafePickleError(f"{where}: array subclass {type(value).__name__}")
        _check_dtype(value.dtype)
        return
    if isinstance(value, np.generic):
        _check_dtype(value.dtype)
        return
    if isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(key, f"{where} key")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise UnsafePickleError(f"{where}: {type(value).__name__} cannot be stored in a session")


def dumps_plain(value: Any) -> bytes:
    """Pickle plain data with protocol 2 after checking it is plain.

    Parameters
    ----------
    value : object
        Plain data (see :func:`check_plain`).

    Returns
    -------
    bytes
        The pickle stream.
    """
    check_plain(value)
    return pickle.dumps(value, protocol=PROTOCOL)
