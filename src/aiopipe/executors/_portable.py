"""Exceptions that cross a process boundary as themselves.

Pickle rebuilds an exception by calling ``type(exc)(*exc.args)``, which fails for a class whose
``__init__`` takes other arguments (``MyError(path, code)`` storing only a message in ``args``),
and anything holding a lock or a socket cannot be pickled at all. Ray then hands the driver an
``UnserializableException`` that has lost the type and the message. So the worker side checks that
the exception survives the trip and, when it would not, sends a recipe instead: the class, its
``args`` and the picklable part of its ``__dict__``; the driver makes an instance with
``BaseException.__new__`` (which skips ``__init__``) and puts the state back. Either way the
remote traceback travels as text and becomes ``__cause__`` (like ``concurrent.futures``' process
pool), since a traceback object cannot be pickled.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any

__all__ = ["Carried", "RemoteTraceback", "carry"]


class RemoteTraceback(Exception):
    """The ``__cause__`` of an exception raised in another process: its traceback, as text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _crosses(obj: object, *, same_type: bool = False) -> bool:
    try:
        back = pickle.loads(_dumps(obj))
    except Exception:
        return False
    return not same_type or type(back) is type(obj)


def _dumps(obj: object) -> bytes:
    # cloudpickle (shipped with Ray) pickles classes and functions defined in scripts and tests by
    # value, as Ray itself does; plain pickle is the fallback when it is absent.
    try:
        from ray import cloudpickle
    except ImportError:
        return pickle.dumps(obj)
    return bytes(cloudpickle.dumps(obj))  # type: ignore[no-untyped-call]


class Carried:
    """An exception on its way back from a worker; :meth:`restore` gives it back to the driver."""

    __slots__ = ("args", "cls", "exc", "message", "state", "tb")

    def __init__(self, exc: BaseException) -> None:
        self.tb = "".join(traceback.format_exception(exc))
        self.exc: BaseException | None = exc if _crosses(exc, same_type=True) else None
        self.cls: type[BaseException] = type(exc)
        self.message = str(exc)
        self.args: tuple[Any, ...] = ()
        self.state: dict[str, Any] = {}
        if self.exc is None:
            self._recipe(exc)

    def _recipe(self, exc: BaseException) -> None:
        if not _crosses(self.cls):  # a class that cannot be pickled even by value
            self.cls = RuntimeError
            self.args = (f"{type(exc).__qualname__}: {exc}",)
            return
        self.args = exc.args if _crosses(exc.args) else (self.message,)
        self.state = {k: v for k, v in vars(exc).items() if _crosses(v)}

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def restore(self) -> BaseException:
        exc = self.exc if self.exc is not None else self._rebuild()
        exc.__cause__ = RemoteTraceback(self.tb)
        return exc

    def _rebuild(self) -> BaseException:
        try:
            exc = self.cls.__new__(self.cls, *self.args)
        except Exception:
            exc = self.cls.__new__(self.cls)
        exc.args = self.args
        for k, v in self.state.items():
            try:
                setattr(exc, k, v)
            except AttributeError:  # a read-only property or __slots__: keep what we can
                continue
        return exc


def carry(result: Any) -> Any:
    """On the worker: make the exception inside ``result`` (``result.exc``) portable."""
    exc = getattr(result, "exc", None)
    if isinstance(exc, BaseException):
        result.exc = Carried(exc)
    return result
