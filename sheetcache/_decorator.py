"""``Cache.cached``: cache a function's calls by its bound arguments."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sheetcache._cache import Cache


def cached(cache: Cache, fn: Any = None, /, *, ttl: Any, **key_parts: Any) -> Any:
    """Decorate ``fn`` (or return a decorator) so equal calls share one cached answer."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        name = f"{func.__module__}.{func.__qualname__}"

        def prompt_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return {"function": name, "arguments": dict(bound.arguments)}

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await cache.aget_or_call(
                    prompt_of(args, kwargs),
                    lambda _p: func(*args, **kwargs),
                    ttl=ttl,
                    **key_parts,
                )

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return cache.get_or_call(
                prompt_of(args, kwargs), lambda _p: func(*args, **kwargs), ttl=ttl, **key_parts
            )

        return wrapper

    return decorate if fn is None else decorate(fn)
