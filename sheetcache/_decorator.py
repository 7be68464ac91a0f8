"""``Cache.cached``: cache a function's calls by its bound arguments.

The prompt a decorated call is keyed by is ``{"function": "module.qualname", "arguments":
{...}}`` with the bound arguments (defaults applied, so ``f(1)`` and ``f(x=1)`` share an
entry), plus, when they apply:

- ``"source"``: the first 16 hex digits of the sha256 of the function's source, so editing
  the function (its prompt template above all) makes its old entries misses. Where the
  source can't be read (a REPL, ``exec``), the function's compiled code and constants are
  hashed instead. ``source=False`` leaves it out.
- ``"self"``: for a method (first parameter ``self`` or ``cls``), ``{"class": "module.Qualname"}``
  of the instance's class (or of ``cls``), and ``"key"``: the value of the instance's
  ``__cache_key__()`` if it has one. The instance itself is never keyed.

Left out of ``arguments``: ``self``/``cls``; pydantic-ai ``RunContext`` arguments (run
state, not input; detected by class name and module, without importing pydantic-ai);
any argument named in ``ignore``; any argument whose name marks a secret
(:func:`sheetcache._keys.is_secret_name`, one warning per name) unless named in
``include``. With ``source=False``, a plain function with none of those keys exactly as
before format 2, so its old entries are still found.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import types
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from sheetcache._errors import ConfigError
from sheetcache._keys import drop_secrets

if TYPE_CHECKING:
    from sheetcache._cache import Cache

__all__ = ["cached", "source_hash"]

log = logging.getLogger("sheetcache")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def cached(
    cache: Cache,
    fn: Any = None,
    /,
    *,
    ttl: Any,
    ignore: Collection[str] = (),
    include: Collection[str] = (),
    source: bool = True,
    samples: int = 1,
    **key_parts: Any,
) -> Any:
    """Decorate ``fn`` (or return a decorator) so equal calls share one cached answer.

    Args:
        cache: the cache to use.
        fn: the function, when used as ``@cache.cached`` without arguments.
        ttl: lifetime of new entries (the cache's default when unset).
        ignore: argument names left out of the key (clients, loggers, callbacks).
        include: secret-looking argument names to key by anyway.
        source: put a hash of the function's source in the key (default True).
        samples: keep up to this many different answers per key, served in rotation
            (as ``get_or_call(samples=...)``).
        **key_parts: more key parts (model, temperature, ...).

    Raises:
        ConfigError: ``ignore`` or ``include`` names an argument the function doesn't have.
    """
    ignore, include = _names(ignore, "ignore"), _names(include, "include")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        params = list(signature.parameters.values())
        name = f"{func.__module__}.{func.__qualname__}"
        var_kw = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)
        if var_kw is None:
            unknown = sorted((ignore | include) - set(signature.parameters))
            if unknown:
                raise ConfigError(
                    f"{name} has no argument {', '.join(map(repr, unknown))}: check the names "
                    f"given to cached(ignore=..., include=...); it takes {list(signature.parameters)}"
                )
        self_name = (
            params[0].name if params and params[0].name in ("self", "cls")
            and params[0].kind in _POSITIONAL else None
        )  # fmt: skip
        left_out = ignore | ({self_name} if self_name else set())
        fingerprint = source_hash(func) if source else None

        def prompt_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments: dict[str, Any] = {}
            for arg, value in bound.arguments.items():
                if arg in left_out or _is_run_context(value):
                    continue
                if arg == var_kw:
                    value = {
                        k: v for k, v in drop_secrets(value, include).items()
                        if k not in ignore and not _is_run_context(v)
                    }  # fmt: skip
                arguments[arg] = value
            prompt: dict[str, Any] = {
                "function": name,
                "arguments": drop_secrets(arguments, include),
            }
            if fingerprint is not None:
                prompt["source"] = fingerprint
            if self_name is not None:
                prompt["self"] = _instance_key(bound.arguments[self_name])
            return prompt

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await cache.aget_or_call(
                    prompt_of(args, kwargs),
                    lambda _p: func(*args, **kwargs),
                    ttl=ttl,
                    samples=samples,
                    **key_parts,
                )

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return cache.get_or_call(
                prompt_of(args, kwargs),
                lambda _p: func(*args, **kwargs),
                ttl=ttl,
                samples=samples,
                **key_parts,
            )

        return wrapper

    return decorate if fn is None else decorate(fn)


def _names(names: Collection[str], what: str) -> frozenset[str]:
    if isinstance(names, str):  # ignore="client" would otherwise mean {"c", "l", ...}
        names = (names,)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise ConfigError(f"cached({what}=...) takes argument names (str), not {bad!r}")
    return frozenset(names)


def _is_run_context(value: Any) -> bool:
    """A pydantic-ai RunContext, told by its class so pydantic-ai is never imported here."""
    cls = type(value)
    return cls.__name__ == "RunContext" and cls.__module__.startswith("pydantic_ai")


def _instance_key(obj: Any) -> dict[str, Any]:
    """What stands for ``self``/``cls`` in the key: the class, and ``__cache_key__()``."""
    cls = obj if isinstance(obj, type) else type(obj)
    key: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    hook = None if isinstance(obj, type) else getattr(obj, "__cache_key__", None)
    if callable(hook):
        key["key"] = hook()
    return key


def source_hash(func: Callable[..., Any]) -> str | None:
    """16 hex digits of the sha256 of ``func``'s source, or of its code where there is none.

    None only for a callable with neither (a builtin): then nothing is added to the key.
    """
    target = inspect.unwrap(func)
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if not isinstance(code, types.CodeType):
            log.info("sheetcache: no source or code for %r; its key has no source hash", func)
            return None
        # Bytecode differs between Python versions: a miss after an upgrade, never a wrong hit.
        text = repr(_code_fingerprint(code))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _code_fingerprint(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(
        _code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts
    )
    return code.co_code, consts, code.co_names
