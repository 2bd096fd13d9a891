"""``csv``: one CSV line to a tuple of typed values (TensorFlow's ``decode_csv``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, final

from .._core.engine._errors import DecodeError

__all__ = ["CsvDecoder", "csv"]

_TYPES: Final = (float, int, str)
_QUOTE: Final = '"'


def csv(record_defaults: Sequence[object], *, field_delim: str = ",") -> CsvDecoder:
    """A function turning a CSV line (``str`` or UTF-8 ``bytes``) into a tuple of values.

    Each entry of ``record_defaults`` is a default value, whose type (``float``, ``int`` or
    ``str``) is the field's type, or one of those types, making the field required. An empty field
    takes its default; fields may be quoted as in RFC 4180 (``"ab""c"`` is ``ab"c``).
    """
    return CsvDecoder(record_defaults, field_delim=field_delim)


@final
class CsvDecoder:
    """The callable :func:`csv` returns; an object rather than a closure so that it pickles."""

    __name__ = "decode.csv"

    def __init__(self, record_defaults: Sequence[object], *, field_delim: str = ",") -> None:
        self._delim = _check_delim(field_delim)
        if isinstance(record_defaults, str | bytes) or not isinstance(record_defaults, Sequence):
            raise ValueError(
                f"record_defaults must be a list of defaults or types, got {record_defaults!r}"
            )
        if not record_defaults:
            raise ValueError("record_defaults must name at least one field, got []")
        specs = [_field_spec(i, entry) for i, entry in enumerate(record_defaults)]
        self._record_defaults = tuple(record_defaults)
        self._convs: tuple[Callable[[str], Any], ...] = tuple(s[0] for s in specs)
        # None stands for "required": no default of an allowed type is None.
        self._defaults: tuple[Any, ...] = tuple(s[1] for s in specs)
        self._required = any(d is None for d in self._defaults)
        self._convert = _compile(self._convs, self._defaults)

    def __call__(self, line: str | bytes | bytearray | memoryview) -> tuple[Any, ...]:
        if not isinstance(line, str):
            line = _decode_bytes(line)
        fields = line.split(self._delim) if _QUOTE not in line else _split_quoted(line, self._delim)
        if len(fields) != len(self._convs):
            raise DecodeError(
                f"expected {len(self._convs)} fields but got {len(fields)} in line {_excerpt(line)}"
            )
        try:
            values = self._convert(*fields)
        except ValueError:
            raise self._explain(fields) from None
        if self._required and None in values:
            raise self._explain(fields)
        return values

    def _explain(self, fields: list[str]) -> DecodeError:
        """The error for the first field that is empty-but-required or unparsable."""
        for index, (f, conv, default) in enumerate(
            zip(fields, self._convs, self._defaults, strict=True)
        ):
            name = conv.__name__
            if not f and default is None:
                return DecodeError(f"field {index} ({name}) is required but empty")
            try:
                conv(f)
            except ValueError:
                return DecodeError(f"field {index}: cannot parse {f!r} as {name}")
        # Only int, float and str convert, and the loop above names their failures.
        return DecodeError(f"cannot decode fields {fields!r}")

    def __reduce__(self) -> tuple[object, ...]:
        # The compiled converter does not pickle; rebuild it from the arguments.
        return (_rebuild, (self._record_defaults, self._delim))

    def __repr__(self) -> str:
        return f"decode.csv({list(self._record_defaults)!r}, field_delim={self._delim!r})"


def _rebuild(record_defaults: tuple[object, ...], field_delim: str) -> CsvDecoder:
    return CsvDecoder(record_defaults, field_delim=field_delim)


def _compile(
    convs: tuple[Callable[[str], Any], ...], defaults: tuple[Any, ...]
) -> Callable[..., tuple[Any, ...]]:
    """A function of the fields returning the converted tuple, unrolled for speed.

    The generated source only names the arguments ``f0..fn`` and the values ``c0..cn`` and
    ``d0..dn``: no user text is compiled. An empty field takes its default (None: required).
    """
    env: dict[str, Any] = {}
    parts = []
    for i, (conv, default) in enumerate(zip(convs, defaults, strict=True)):
        env[f"c{i}"], env[f"d{i}"] = conv, default
        value = f"f{i}" if conv is str else f"c{i}(f{i})"
        parts.append(f"{value} if f{i} else d{i}")
    args = ", ".join(f"f{i}" for i in range(len(convs)))
    source = f"def convert({args}):\n    return ({', '.join(parts)},)\n"
    exec(source, env)
    convert: Callable[..., tuple[Any, ...]] = env["convert"]
    return convert


def _excerpt(line: str, limit: int = 200) -> str:
    return repr(line) if len(line) <= limit else repr(line[:limit]) + f"... ({len(line)} chars)"


def _field_spec(index: int, entry: object) -> tuple[Callable[[str], Any], Any]:
    if isinstance(entry, type) and entry in _TYPES:
        return entry, None
    if isinstance(entry, bool) or not isinstance(entry, _TYPES):
        raise ValueError(
            f"record_defaults[{index}] must be a float, int or str default, or one of the types "
            f"float, int, str; got {entry!r}"
        )
    return type(entry), entry


def _check_delim(field_delim: object) -> str:
    if not isinstance(field_delim, str) or len(field_delim) != 1 or field_delim in '"\r\n':
        raise ValueError(
            f"field_delim must be one character other than a quote or a line break, "
            f"got {field_delim!r}"
        )
    return field_delim


def _decode_bytes(line: object) -> str:
    if not isinstance(line, bytes | bytearray | memoryview):
        raise TypeError(f"decode.csv takes a str or bytes line, got {type(line).__name__}")
    try:
        return bytes(line).decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"line is not valid UTF-8 ({exc}): {bytes(line)!r}") from None


def _split_quoted(line: str, delim: str) -> list[str]:
    """Split a line that contains quotes, following RFC 4180."""
    fields: list[str] = []
    i, n = 0, len(line)
    while True:
        if i < n and line[i] == _QUOTE:
            field, i = _read_quoted(line, i, len(fields))
            fields.append(field)
            if i == n:
                return fields
            if line[i] != delim:
                raise DecodeError(
                    f"field {len(fields) - 1}: expected {delim!r} or the end of the line after "
                    f"a closing quote, saw {line[i]!r} in {_excerpt(line)}"
                )
            i += 1
            continue
        end = line.find(delim, i)
        field = line[i:] if end < 0 else line[i:end]
        if _QUOTE in field:
            raise DecodeError(
                f"field {len(fields)}: a quote inside an unquoted field, saw {field!r}; quote "
                "the whole field and double the quotes inside it"
            )
        fields.append(field)
        if end < 0:
            return fields
        i = end + 1


def _read_quoted(line: str, start: int, index: int) -> tuple[str, int]:
    """The value of the quoted field opening at ``start`` and the position after its close."""
    parts: list[str] = []
    j = start + 1
    while True:
        close = line.find(_QUOTE, j)
        if close < 0:
            raise DecodeError(f"field {index}: unterminated quote, saw {line[start:]!r}")
        parts.append(line[j:close])
        if line.startswith(_QUOTE, close + 1):  # "" inside quotes is one quote
            parts.append(_QUOTE)
            j = close + 2
            continue
        return "".join(parts), close + 1
