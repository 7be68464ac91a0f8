r"""Cache keys: one pure function from (namespace, prompt, key parts) to a sha256 hex digest.

The key is ``sha256(canonical)`` where ``canonical`` is the UTF-8 text of the JSON array
``[KEY_FORMAT_VERSION, namespace, prompt, key_parts]`` in the JSON Canonicalization Scheme
(RFC 8785, "JCS"), so any language with a JCS library can recompute a key:

- object keys sorted by their UTF-16 code units at every depth, no white space;
- strings as UTF-8, escaping only ``"``, ``\\`` and control characters (``\\n``, ``\\u001f``);
- numbers as ECMAScript writes them: ``0``, ``0.0`` and ``-0.0`` are all ``0``, ``1e16`` is
  ``10000000000000000``, ``1e21`` is ``1e+21``. An int and a float of equal value key alike.

Where JCS has no answer, sheetcache extends it, always deterministically and without
letting two different inputs share a key:

- **integers no double holds exactly** (beyond 2**53, e.g. ``2**53 + 1``) are written as
  ``{"\\u0000int": "<exact digits>"}``. JCS would round them to a double, so ``2**53`` and
  ``2**53 + 1`` would collide. An int that *is* a double (``2**62``) keys like that double.
- **lone surrogates** (half an emoji, from a truncated JSON decode) are written as the escape
  ``\\udxxx``, as ECMAScript's ``JSON.stringify`` does. JCS itself refuses them.
- **dicts with a key that is not a str** (``{1: "x"}``, in ``provider_details``) are written
  as ``{"\\u0000dict": [[key, value], ...]}`` with the pairs sorted by their canonical text;
  a str key that starts with NUL gets one more NUL in front, so the tag never comes from
  your data and ``{1: x}`` never keys like ``{"1": x}``.
- dates, times and UUIDs are their RFC 3339 or hex text (so they key like that str);
  tuples are lists, enums their value, dataclasses and pydantic models their fields, pydantic
  model *classes* (output schemas) ``{"$schema": <JSON schema>}``, sets sorted lists. These
  are deliberate equalities: ``(1, 2)`` keys like ``[1, 2]``.

NaN and infinities have no JSON form and raise :class:`TypeError` naming the part, as does
anything else without a canonical form (a socket, a lambda), before the caller's function runs.

Secrets never reach a key: a key part whose *name* marks a secret (see
:func:`is_secret_name`) is left out, with one warning per name, unless it is named in
``include``. The stored prompt and parts are read back from the canonical bytes
(:func:`parse_canonical`), so they cannot hold it either.

Bump :data:`KEY_FORMAT_VERSION` whenever the canonical form changes. Format 1 (orjson's
number forms) stays reachable through :func:`legacy_key`, so the cache can still find
entries written before the upgrade.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Collection, Mapping
from typing import Any

import orjson

from sheetcache._keys_v1 import v1_key

__all__ = [
    "KEY_FORMAT_VERSION",
    "canonical_bytes",
    "drop_secrets",
    "has_non_finite",
    "is_secret_name",
    "jcs_string",
    "key_of",
    "legacy_key",
    "lookup_bytes",
    "make_key",
    "parse_canonical",
]

log = logging.getLogger("sheetcache")

#: Part of every key; bump it when the canonical form changes.
KEY_FORMAT_VERSION = 2

#: The one object key sheetcache writes itself: a dict whose keys are not all str.
MAP_TAG = "\x00dict"
_INT_TAG = "\\u0000int"  # as written: {"\u0000int": "<digits>"}

_PASS = orjson.OPT_PASSTHROUGH_DATACLASS
_SORT = orjson.OPT_SORT_KEYS
_EXACT = 2**53  # every integer up to this magnitude is exactly a double
_INF = math.inf


_AS_TEXT = (datetime.datetime, datetime.date, datetime.time, uuid.UUID)


class _Slow(Exception):
    """The fast path (orjson) can't write this exactly as JCS does; the full writer can."""


# -- numbers and strings ------------------------------------------------------------------


def _es_number(x: float) -> str:
    """ECMAScript's Number::toString of a finite double: JCS's number form."""
    if x == 0:
        return "0"  # -0.0 too
    if x < 0:
        return "-" + _es_number(-x)
    # repr gives the shortest digits that round-trip, as ECMAScript requires; only the
    # layout (where the point goes, when to use an exponent) differs.
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).rstrip("0")
    stripped = digits.lstrip("0")
    n = len(whole) + int(exp or 0) - (len(digits) - len(stripped))  # value = 0.d * 10**n
    digits, k = stripped, len(stripped)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{sign}{abs(e)}"


def _int_text(n: int) -> str:
    """An int in JCS: the double it equals when one does, else the tagged exact digits.

    Plain digits would not do for ``2**53 + 1``: a JCS reader rounds them to a double, and
    they may be the very text of another double (``4611686018427388000`` is how ``2.0**62``
    is written), so two different numbers would share a key.
    """
    if -_EXACT <= n <= _EXACT:
        return str(n)
    try:
        f = float(n)
    except OverflowError:
        f = _INF
    if f != _INF and int(f) == n:
        return _es_number(f)
    return f'{{"{_INT_TAG}":"{_digits(n)}"}}'


def _digits(n: int) -> str:
    """Exact decimal digits of any int (Python refuses str() past 4300 digits)."""
    if abs(n) < 10**4000:
        return str(n)
    sign, n = ("-", -n) if n < 0 else ("", n)
    chunk = 10**1000
    parts = []
    while n:
        n, low = divmod(n, chunk)
        parts.append(low)
    head, *rest = reversed(parts)
    return sign + str(head) + "".join(str(p).zfill(1000) for p in rest)


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\\ud800-\udfff]')


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def jcs_string(s: str) -> str:
    r"""``s`` as a JCS string literal, lone surrogates escaped as ``\\udxxx``.

    The result is valid Unicode text for any ``s``, and :func:`json.loads` inverts it exactly.

    >>> jcs_string('a"\\n\\ud800')
    '"a\\\\"\\\\n\\\\ud800"'
    """
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'


def _utf16(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


# -- conversions shared by both writers ---------------------------------------------------


def _convert(obj: Any) -> Any:
    """The JSON-shaped stand-in for a non-JSON type, or raise _Slow if there is none."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, _AS_TEXT):  # as format 1 (orjson) wrote them: RFC 3339, hex UUID
        return orjson.dumps(obj)[1:-1].decode()
    if isinstance(obj, str):
        return str.__str__(obj)  # a subclass: its text, not its __str__
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int.__index__(obj)
    if isinstance(obj, float):
        return float.__float__(obj)
    if isinstance(obj, Mapping):
        return dict(obj.items())
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=_sort_text)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, type):
        schema = getattr(obj, "model_json_schema", None)
        if callable(schema):  # a pydantic model class: its schema is what shapes the answer
            return {"$schema": schema()}
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):  # a pydantic model instance
        return dump(mode="json")
    raise _Slow


def _sort_text(item: Any) -> bytes:
    out: list[str] = []
    _write(item, "a set item", out)
    return "".join(out).encode("utf-8")


# -- the fast path: orjson, after fixing up what it writes differently from JCS ----------


def _fast(obj: Any) -> Any:
    """``obj`` with numbers in JCS form; the same object when nothing needed fixing.

    Raises _Slow where orjson's output would differ from JCS in a way only the full writer
    handles (NaN, odd or NUL-led dict keys, key orders that differ in UTF-16). Plain strings
    are checked inline: this walk is on every L1 miss, so it avoids calls where it can.
    """
    t = type(obj)
    if t is str or t is bool or obj is None:
        return obj  # orjson raises on lone surrogates: then the full writer escapes them
    if t is int:
        return obj if -_EXACT <= obj <= _EXACT else orjson.Fragment(_int_text(obj))
    if t is float:
        if obj.is_integer():
            # orjson writes 1.0 and 2.0**53 with ".0"; JCS writes them as integers.
            return int(obj) if -_EXACT <= obj <= _EXACT else orjson.Fragment(_es_number(obj))
        if 1e-5 <= abs(obj) < 1e16:  # orjson and ECMAScript agree here (tested)
            return obj
        if obj != obj or obj in (_INF, -_INF):
            raise _Slow
        return orjson.Fragment(_es_number(obj))
    if t is dict:
        out = None
        for k, v in obj.items():
            # Non-ASCII keys may sort differently in UTF-16 (orjson sorts by code point),
            # NUL-led ones need escaping ("k < '\x01'" catches them): the full writer.
            if type(k) is not str or not k.isascii() or (k < "\x01" and k):
                raise _Slow
            tv = type(v)
            if tv is str or (tv is float and (1e-5 <= v < 1e16 or -1e16 < v <= -1e-5)
                             and not v.is_integer()):  # fmt: skip
                continue
            nv = _fast(v)
            if nv is not v:
                if out is None:
                    out = dict(obj)
                out[k] = nv
        return obj if out is None else out
    if t is list or t is tuple:
        items = None
        for i, v in enumerate(obj):
            tv = type(v)
            if tv is str:
                continue
            if tv is dict and _plain_message(v):  # chat messages: skip a call per message
                continue
            nv = _fast(v)
            if nv is not v:
                if items is None:
                    items = list(obj)
                items[i] = nv
        return obj if items is None else items
    return _fast(_convert(obj))


def _plain_message(d: dict[Any, Any]) -> bool:
    """True if orjson writes ``d`` exactly as JCS does: str values, plain ASCII str keys."""
    for k, v in d.items():
        if type(v) is not str or type(k) is not str or not k.isascii() or (k < "\x01" and k):
            return False
    return True


# -- the full writer: every rule, with the culprit named on failure ----------------------


def _write(obj: Any, where: str, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif type(obj) is str:
        out.append(jcs_string(obj))
    elif type(obj) is int:
        out.append(_int_text(obj))
    elif type(obj) is float:
        if not math.isfinite(obj):
            raise TypeError(
                f"{where} is {obj!r}: NaN and infinities have no JSON form (RFC 8785); pass "
                "it as a string if it must be in the key"
            )
        out.append(_es_number(obj))
    elif type(obj) is dict:
        _write_dict(obj, where, out)
    elif type(obj) is list or type(obj) is tuple:
        out.append("[")
        for i, v in enumerate(obj):
            if i:
                out.append(",")
            _write(v, f"{where}[{i}]", out)
        out.append("]")
    else:
        try:
            converted = _convert(obj)
        except _Slow:
            raise TypeError(
                f"{where} of type {type(obj).__qualname__} cannot be part of a cache key: pass "
                "JSON-compatible data (str, int, float, bool, None, lists, dicts), a "
                "dataclass or a pydantic model, or leave it out of the key"
            ) from None
        _write(converted, where, out)


def _write_dict(obj: dict[Any, Any], where: str, out: list[str]) -> None:
    if all(type(k) is str for k in obj):
        # A NUL-led key gets one more NUL, so MAP_TAG only ever comes from the branch below.
        named = {("\x00" + k if k[:1] == "\x00" else k): (k, v) for k, v in obj.items()}
        out.append("{")
        for i, name in enumerate(sorted(named, key=_utf16)):
            k, v = named[name]
            out.append("," if i else "")
            out.append(jcs_string(name))
            out.append(":")
            _write(v, f"{where}[{k!r}]", out)
        out.append("}")
        return
    pairs = []
    for k, v in obj.items():
        key_out: list[str] = []
        _write(k, f"{where} key {k!r}", key_out)
        value_out: list[str] = []
        _write(v, f"{where}[{k!r}]", value_out)
        pairs.append(("".join(key_out), "".join(value_out)))
    pairs.sort(key=lambda p: (p[0].encode("utf-8"), p[1].encode("utf-8")))
    body = ",".join(f"[{k},{v}]" for k, v in pairs)
    out.append(f"{{{jcs_string(MAP_TAG)}:[{body}]}}")


def _write_all(prompt: Any, namespace: str, key_parts: Mapping[str, Any]) -> bytes:
    out = [f"[{KEY_FORMAT_VERSION},", jcs_string(namespace), ","]
    _write(prompt, "prompt", out)
    out.append(",{")
    for i, name in enumerate(sorted(key_parts, key=_utf16)):
        out.append("," if i else "")
        out.append(jcs_string("\x00" + name if name[:1] == "\x00" else name))
        out.append(":")
        _write(key_parts[name], f"key part {name!r}", out)
    out.append("}]")
    return "".join(out).encode("utf-8")


# -- secrets ------------------------------------------------------------------------------

# Words that mark a secret wherever they stand in a name, and words that do so only as its
# last word ("github_token" is a secret, "token_limit" and "max_tokens" are not).
_SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "secrets", "credential", "credentials",
     "creds", "authorization", "auth", "apikey", "bearer", "cookie", "cookies"}
)  # fmt: skip
_SECRET_LAST = frozenset({"token", "jwt", "pat"})
# ...but a "..._token" after one of these is text or a cursor that changes the answer.
_TOKEN_NOT_SECRET = frozenset(
    {"eos", "bos", "pad", "unk", "sep", "cls", "mask", "stop", "start", "end", "special",
     "image", "page", "next", "prev", "previous", "continuation", "cursor", "sync", "resume"}
)  # fmt: skip
# "..._key" is a secret only after one of these ("sort_key", "cache_key" are not).
_KEY_OWNERS = frozenset(
    {"api", "access", "private", "secret", "signing", "encryption", "client", "app",
     "subscription", "license", "master", "service", "session", "account", "auth"}
)  # fmt: skip
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[a-z0-9]+")


def is_secret_name(name: str) -> bool:
    """True if an argument or key part called ``name`` is taken to hold a secret.

    The name is split into words (snake_case, kebab-case, camelCase, any case). It is a
    secret if a word is one of password, passwd, passphrase, secret(s), credential(s),
    creds, authorization, auth, apikey, bearer, cookie(s); or its last word is token, jwt
    or pat, except after eos, bos, pad, unk, sep, cls, mask, stop, start, end, special,
    image, page, next, prev(ious), continuation, cursor, sync or resume (tokenizer text
    and cursors change the answer); or its last word is key after api, access, private, secret, signing,
    encryption, client, app, subscription, license, master, service, session, account or
    auth.

    >>> [is_secret_name(n) for n in ("api_key", "OPENAI_API_KEY", "apiKey", "github_token")]
    [True, True, True, True]
    >>> [is_secret_name(n) for n in ("max_tokens", "token_limit", "sort_key", "author")]
    [False, False, False, False]
    """
    words = _WORD.findall(_CAMEL.sub("_", name).lower())
    if not words:
        return False
    if not _SECRET_WORDS.isdisjoint(words):
        return True
    if words[-1] in _SECRET_LAST:
        return len(words) == 1 or words[-2] not in _TOKEN_NOT_SECRET
    return words[-1] == "key" and len(words) > 1 and words[-2] in _KEY_OWNERS


_secret_memo: dict[Any, tuple[str, ...]] = {}
_warned: set[str] = set()
_warn_lock = threading.Lock()


def _secrets_among(names: tuple[str, ...], include: Collection[str]) -> tuple[str, ...]:
    """The names that mark secrets and are not in ``include``; memoised per set of names."""
    memo_key = (names, frozenset(include)) if include else names
    found = _secret_memo.get(memo_key)
    if found is None:
        found = tuple(n for n in names if n not in include and is_secret_name(n))
        if len(_secret_memo) > 4096:  # a caller making up names: don't grow forever
            _secret_memo.clear()
        _secret_memo[memo_key] = found
        for name in found:
            with _warn_lock:
                if name in _warned:
                    continue
                _warned.add(name)
            log.warning(
                "sheetcache: %r is left out of the cache key and the stored row because its "
                "name marks a secret; name it in include=(%r,) if it must be in the key",
                name, name,
            )  # fmt: skip
    return found


def drop_secrets(named: Mapping[str, Any], include: Collection[str] = ()) -> Mapping[str, Any]:
    """``named`` without the entries whose name marks a secret (warning once per name).

    Returns ``named`` itself when it holds no secret, so the common case costs one lookup.
    """
    found = _secrets_among(tuple(named), include)
    if not found:
        return named
    return {k: v for k, v in named.items() if k not in found}


# -- the key ------------------------------------------------------------------------------


def canonical_bytes(
    prompt: Any, namespace: str, key_parts: Mapping[str, Any], include: Collection[str] = ()
) -> bytes:
    """Return the canonical JSON bytes (RFC 8785 plus the extensions above) that
    :func:`make_key` hashes. Key parts named like secrets are left out (see ``include``).

    Args:
        prompt: the prompt, a str or chat messages.
        namespace: the cache's namespace.
        key_parts: the other parts of the key, by name.
        include: secret-looking names to keep in the key anyway.

    Raises:
        TypeError: a part has no canonical form (NaN, a socket); the message names it.
    """
    if type(namespace) is not str:
        raise TypeError(f"namespace must be a str, not {type(namespace).__qualname__}")
    parts = drop_secrets(key_parts, include)
    try:
        return orjson.dumps(
            [KEY_FORMAT_VERSION, namespace, _fast(prompt), _fast(parts)], option=_SORT
        )
    except (_Slow, TypeError, RecursionError):
        pass
    try:
        return _write_all(prompt, namespace, parts)
    except RecursionError:
        raise TypeError("the prompt or a key part is nested too deeply to be keyed") from None


def key_of(canonical: bytes) -> str:
    """The key (sha256 hex) of :func:`canonical_bytes`'s output."""
    return hashlib.sha256(canonical).hexdigest()


def make_key(prompt: Any, namespace: str = "default", **key_parts: Any) -> str:
    """Return the cache key (64 lowercase hex characters) of a prompt and its key parts.

    Example:
        >>> make_key("What is 2+2?", model="gpt-4o", temperature=0)[:12]
        'dbf500fb48da'
        >>> make_key("What is 2+2?", model="gpt-4o", temperature=0.0)[:12]
        'dbf500fb48da'
    """
    return hashlib.sha256(canonical_bytes(prompt, namespace, key_parts)).hexdigest()


def legacy_key(prompt: Any, namespace: str, key_parts: Mapping[str, Any]) -> str | None:
    """The key format 1 gave these inputs, or None where format 1 could not key them.

    For finding entries stored before the upgrade to format 2. Format 1 kept secret-named
    parts in the key, so pass ``key_parts`` as the caller gave them.
    """
    return v1_key(prompt, namespace, key_parts)


def lookup_bytes(
    prompt: Any, namespace: str, key_parts: Mapping[str, Any], include: Collection[str] = ()
) -> bytes:
    """Exact JSON of the key's content in the caller's order: the in-process L1's key.

    Skipping the sort, the number rewrite and the secret filter makes a hit cheaper. Equal
    bytes still mean equal content, hence equal canonical keys, so L1 never answers a
    different question; the same content in another dict order (or ``0`` for ``0.0``) is an
    L1 miss that the canonical key then finds in the backend. These bytes never leave the
    process. Content orjson refuses (lone surrogates, odd dict keys, huge ints) gets the
    canonical bytes instead, which start differently (``[2,``), so the two never collide.

    NaN and infinities come out as ``null`` here, unchecked (scanning for them costs more
    than the dump): the caller must run :func:`canonical_bytes` before trusting a match
    whose bytes contain ``null``.

    Raises:
        TypeError: as :func:`canonical_bytes`.
    """
    try:
        if include:
            return orjson.dumps([namespace, prompt, key_parts, sorted(include)],
                                default=_lookup_default, option=_PASS)  # fmt: skip
        return orjson.dumps([namespace, prompt, key_parts], default=_lookup_default, option=_PASS)
    except TypeError:
        return canonical_bytes(prompt, namespace, key_parts, include)


def _lookup_default(obj: Any) -> Any:
    try:
        return _convert(obj)
    except _Slow:
        raise TypeError(f"{type(obj).__qualname__} is not JSON serializable") from None


def has_non_finite(obj: Any) -> bool:
    """True if a NaN or an infinity may hide in ``obj`` (exact for dicts, lists, scalars).

    The cheap check for an L1 hit whose bytes hold ``null`` (orjson writes NaN as null);
    other types were already vetted by the canonical form when the entry was stored.
    """
    if type(obj) is float:
        return not math.isfinite(obj)
    if type(obj) is dict:
        return any(has_non_finite(v) for v in obj.values())
    if type(obj) is list or type(obj) is tuple:
        return any(has_non_finite(v) for v in obj)
    # A model, dataclass or subclass is a "maybe": canonical_bytes then decides.
    return not (isinstance(obj, (str, int, bool)) or obj is None)


def parse_canonical(canonical: bytes) -> tuple[str, Any, dict[str, Any]]:
    """``(namespace, prompt, key_parts)`` read back from :func:`canonical_bytes`, to store.

    This is what rows hold, for people and exports: numbers in their canonical form, no
    secret-named parts (they were never in the bytes). A lone surrogate becomes U+FFFD here
    so every store can write the row; the key itself kept the exact text.
    """
    try:
        _version, namespace, prompt, key_parts = orjson.loads(canonical)
    except orjson.JSONDecodeError:  # lone surrogate escapes: only json reads them
        _version, namespace, prompt, key_parts = _mend(json.loads(canonical))
    return namespace, prompt, key_parts


_SURROGATE = re.compile("[\ud800-\udfff]")


def _mend(obj: Any) -> Any:
    if type(obj) is str:
        return _SURROGATE.sub("\ufffd", obj)
    if type(obj) is list:
        return [_mend(v) for v in obj]
    if type(obj) is dict:
        return {_mend(k): _mend(v) for k, v in obj.items()}
    return obj
