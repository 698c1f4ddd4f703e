"""Event times: epoch seconds from numbers or ISO 8601 strings, one value at a time or a
whole column at once, and the range of event times accepted for a receive time.

A column of ISO strings in the usual shapes is parsed with numpy (no Python loop over
the rows), giving exactly what ``datetime.fromisoformat(v).timestamp()`` gives; every
other value goes through :func:`parse_timestamp`.

Event times drive time windows, which close as event time moves on: one record stamped
in year 9999 would move it to the end of time and hold every later window open. So a
time is accepted only within :class:`EventTimeRange` of the moment it was received
(``limits.max_future_seconds`` ahead, ``limits.max_age_seconds`` back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from monitor.records import Invalid, Reason, is_number, json_type
from monitor.settings import LimitsConfig

# The largest epoch-seconds timestamp accepted (2100-01-01): a larger one is almost always
# milliseconds sent by mistake, and saying so beats silently placing it in year 50,000.
MAX_EPOCH_SECONDS = 4_102_444_800.0
_NONE = type(None)


def parse_timestamp(value: Any, path: str) -> float:
    """Epoch seconds from a number of seconds or an ISO 8601 string (naive means UTC)."""
    if is_number(value):
        seconds = float(value)
        if not 0.0 <= seconds <= MAX_EPOCH_SECONDS:
            hint = " (milliseconds? send seconds)" if seconds > MAX_EPOCH_SECONDS else ""
            raise Invalid(
                path,
                Reason.INVALID_VALUE,
                f"epoch seconds must be between 0 and {MAX_EPOCH_SECONDS:.0f}, got {value!r}{hint}",
            )
        return seconds
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise Invalid(
                path, Reason.INVALID_VALUE, f"must be epoch seconds or an ISO 8601 time, got {value[:64]!r}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise Invalid(path, Reason.WRONG_TYPE, f"must be epoch seconds or an ISO 8601 string, got {json_type(value)}")


@dataclass(frozen=True, slots=True)
class EventTimeRange:
    """The event times accepted: ``low`` to ``high`` inclusive. Always within 1970 to 2100
    (the range of epoch seconds :func:`parse_timestamp` takes, for ISO strings too); for
    records received at ``received_at`` (live ingestion), also at most ``max_future``
    seconds after it and, when set, at most ``max_age`` before it. Item-by-item and
    column-wise validation both compare with these two floats, so they agree to the bit."""

    received_at: float | None  # None: history (a file replay), only the absolute bounds
    low: float
    high: float
    max_future: float | None = None
    max_age: float | None = None

    @classmethod
    def of(cls, received_at: float, limits: LimitsConfig) -> EventTimeRange:
        future, age = limits.max_future_seconds, limits.max_age_seconds
        low = 0.0 if age is None else max(0.0, received_at - age)
        return cls(received_at, low, min(MAX_EPOCH_SECONDS, received_at + future), future, age)

    @classmethod
    def history(cls) -> EventTimeRange:
        return cls(None, 0.0, MAX_EPOCH_SECONDS)

    def check(self, seconds: float, path: str, what: str = "") -> float:
        """``seconds`` if in range, else raises the rejection; ``what`` names where a time
        the record did not carry itself came from (a Kafka message's timestamp)."""
        if self.low <= seconds <= self.high:
            return seconds
        raise self.problem(seconds, path, what)

    def problem(self, seconds: float, path: str, what: str = "") -> Invalid:
        """The rejection of ``seconds``, outside the range: it names the bound it broke."""
        shown = f"{what} {_shown_time(seconds)}" if what else _shown_time(seconds)
        now = self.received_at
        if now is not None and self.max_future is not None and seconds > now + self.max_future:
            message = (
                f"{shown} is {_amount(seconds - now)} s after the receive time ({_shown_time(now)}); at most "
                f"{_amount(self.max_future)} s ahead is accepted (limits.max_future_seconds)"
            )
        elif now is not None and self.max_age is not None and seconds < now - self.max_age:
            message = (
                f"{shown} is {_amount(now - seconds)} s before the receive time ({_shown_time(now)}); at most "
                f"{_amount(self.max_age)} s old is accepted (limits.max_age_seconds)"
            )
        else:
            message = (
                f"{shown} is outside 1970-01-01T00:00:00Z to {_shown_time(MAX_EPOCH_SECONDS)}, the event times accepted"
            )
        return Invalid(path, Reason.TIMESTAMP_OUT_OF_RANGE, message)


def _amount(seconds: float) -> str:
    """Seconds to the millisecond, without trailing zeros: 300, 300.001."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _shown_time(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # beyond datetime's years 1-9999
        return f"{seconds:.0f} (epoch seconds)"


def plain_floats(values: list[Any], kinds: set[type]) -> np.ndarray | None:
    """``values`` as float64 when ``kinds`` (their types) are only int and float; None
    otherwise, or when an int is too large for a float."""
    if not kinds <= {int, float}:
        return None
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:
        return None


@dataclass(frozen=True, slots=True)
class _IsoShape:
    """One ISO 8601 shape: the lowest code allowed at each position and how far above it
    a code may be (so ``(code - low) > span`` finds every wrong character at once, a code
    below ``low`` wrapping around to a large unsigned number), the positions of the digits
    (year, month, day, hour, minute, second, then the fraction) and the fraction digits'
    weights in microseconds."""

    low: np.ndarray
    span: np.ndarray
    digits: np.ndarray
    fraction_weights: tuple[int, ...]


# ISO 8601 shapes parsed column-wise, by length: date, 'T' or ' ', time, optional 3 or 6
# fraction digits, optional 'Z' or '+00:00'; 'd' is a digit. Other shapes are parsed one by one.
_ISO_SHAPES: dict[int, _IsoShape] = {}
for _body in ("dddd-dd-ddTdd:dd:dd", "dddd-dd-ddTdd:dd:dd.ddd", "dddd-dd-ddTdd:dd:dd.dddddd"):
    for _suffix in ("", "Z", "+00:00"):
        _shape = _body + _suffix
        _low = np.array([48 if c == "d" else ord(c) for c in _shape], dtype=np.uint8)
        _high = np.array([57 if c == "d" else ord(c) for c in _shape], dtype=np.uint8)
        _low[10] = ord(" ")  # the separator is checked apart: 'T' or ' '
        _fraction = len(_body) - 20 if "." in _body else 0
        _ISO_SHAPES[len(_shape)] = _IsoShape(
            _low,
            _high - _low,
            np.array([k for k, c in enumerate(_body) if c == "d"], dtype=np.intp),
            tuple(10 ** (5 - k) for k in range(_fraction)),
        )
_ISO_LONGEST = max(_ISO_SHAPES)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def timestamps_column(
    values: list[Any], received_at: float, bad: set[int], accepted: EventTimeRange | None = None
) -> list[float]:
    """Epoch seconds per row (``received_at`` for null), as :func:`parse_timestamp` gives
    them; rows it would refuse, and rows whose time is outside ``accepted``, are added to
    ``bad``."""
    seconds = _seconds_column(values, received_at, bad)
    if seconds is None:
        return [received_at] * len(values)  # no row has a time: the receive time is within any range
    if accepted is not None:
        # One pass of numpy comparisons; a refused row (0.0 above) may be counted twice: a set.
        outside = (seconds < accepted.low) | (seconds > accepted.high)
        if outside.any():
            bad.update(np.flatnonzero(outside).tolist())
    return seconds.tolist()


def _seconds_column(values: list[Any], received_at: float, bad: set[int]) -> np.ndarray | None:
    """Epoch seconds per row as float64, None when every row is null; rows
    :func:`parse_timestamp` refuses are 0.0 and in ``bad``."""
    iso = _iso_array(values)
    if iso is None:
        kinds = set(map(type, values))
        if kinds == {_NONE}:
            return None
        iso = plain_floats(values, kinds)
        if iso is None or not bool(((iso >= 0.0) & (iso <= MAX_EPOCH_SECONDS)).all()):
            iso = np.full(len(values), math.nan)
    missing = np.isnan(iso)
    if not missing.any():
        return iso
    for j in np.flatnonzero(missing).tolist():  # not done column-wise: one by one
        value = values[j]
        try:
            iso[j] = received_at if value is None else parse_timestamp(value, "timestamp")
        except Invalid:
            bad.add(j)
            iso[j] = 0.0
    return iso


def _iso_array(values: list[Any]) -> np.ndarray | None:
    """Epoch seconds of ISO 8601 strings in the shapes of ``_ISO_SHAPES`` (naive = UTC),
    NaN for strings in other shapes or with an out-of-range field; None when the values
    are not all strings. Exactly what ``datetime.fromisoformat(v).timestamp()`` gives:
    integer microseconds divided by 10**6, correctly rounded either way."""
    try:
        joined = "".join(values)  # also the type check: it refuses anything but strings
    except TypeError:
        return None
    n = len(values)
    lengths = set(map(len, values))
    if not lengths:
        return np.empty(0)
    if len(lengths) == 1 and joined.isascii():
        # The usual batch (one client, one format): the characters as one (n, length)
        # matrix of bytes, straight from the joined text, with no numpy string array.
        length = lengths.pop()
        shape = _ISO_SHAPES.get(length)
        if shape is None:
            return np.full(n, np.nan)
        return _iso_parse(np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(n, length), shape)
    if max(lengths) > _ISO_LONGEST:  # numpy pads every string to the longest
        return None
    # Mixed lengths or non-ASCII text: code points of a numpy string array, one length at a time.
    text = np.array(values)
    codes = text.view(np.uint32).reshape(n, text.dtype.itemsize // 4)
    by_row = np.fromiter(map(len, values), dtype=np.intp, count=n)
    out = np.full(n, np.nan)
    for length in sorted(lengths):
        shape = _ISO_SHAPES.get(length)
        if shape is not None:
            rows = np.flatnonzero(by_row == length)
            out[rows] = _iso_parse(codes[rows, :length], shape)
    return out


def _iso_parse(chars: np.ndarray, shape: _IsoShape) -> np.ndarray:
    """Epoch seconds of each row of ``chars`` (character codes, one string of ``shape`` per
    row), NaN for a row with a wrong character or an out-of-range field."""
    n = len(chars)
    sep = chars[:, 10]
    ok = (sep == 84) | (sep == 32)  # 'T' or ' '
    wrong = (chars - shape.low) > shape.span
    if wrong.any():  # rarely: the per-row reduction costs more than the check itself
        ok &= ~wrong.any(axis=1)
    # One contiguous int64 row per digit (integer arithmetic: no float product, no BLAS).
    d = chars[:, shape.digits].T.astype(np.int64)
    d -= 48
    hour, minute, second = d[8] * 10 + d[9], d[10] * 10 + d[11], d[12] * 10 + d[13]
    fraction = 0
    for k, weight in enumerate(shape.fraction_weights):
        fraction = fraction + d[14 + k] * weight
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    if bool((d[:8] == d[:8, :1]).all()):
        # Every row has the same date (a batch rarely spans midnight): check it and count
        # its days once. Rows whose date characters are wrong are already refused by ``ok``.
        first = d[:8, 0].tolist()
        try:
            days = (
                date(
                    first[0] * 1000 + first[1] * 100 + first[2] * 10 + first[3],
                    first[4] * 10 + first[5],
                    first[6] * 10 + first[7],
                ).toordinal()
                - _EPOCH_ORDINAL
            )
        except (ValueError, OverflowError):  # an invalid date (Feb 30, year 0, ...) or non-digits
            return np.full(n, np.nan)
    else:
        year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]
        month, day = d[4] * 10 + d[5], d[6] * 10 + d[7]
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        month_ok = (month >= 1) & (month <= 12)
        last_day = _MONTH_DAYS[np.where(month_ok, month, 1)] + (leap & (month == 2))
        ok &= (year >= 1) & month_ok & (day >= 1) & (day <= last_day)
        # Days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's days_from_civil).
        y = year - (month <= 2)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
        days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    micros = (days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000 + fraction
    # Beyond 2**53 microseconds (before 1685 or after 2255) the integer does not
    # convert to a float exactly: those go to fromisoformat.
    ok &= np.abs(micros) < 2**53
    seconds = micros / 1e6
    if not ok.all():
        seconds[~ok] = np.nan
    return seconds
