"""Loading one saved block by type and name, the one place a failure to load becomes a
ConfigurationError naming the type and the name (never the block's values). Used by
``blocks.loader`` and by blocks that refer to another block (an AnonymisationKey kept in
Vault)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from envforge.errors import ConfigurationError
from envforge.settings import EnvforgeSettings, load_settings

BlockT = TypeVar("BlockT")


def settings_of(environ: Mapping[str, str] | None) -> EnvforgeSettings:
    """The settings a block's ``from_environment(environ)`` reads: from ``environ`` when given
    (tests), else the process's (through envforge.settings, the one reader)."""
    return load_settings() if environ is None else EnvforgeSettings.from_environ(environ)


def load_block(block_cls: type[BlockT], name: str | None,
               settings: EnvforgeSettings | None = None) -> BlockT:
    """The saved block ``name`` of ``block_cls``, or ``block_cls.from_settings(settings)`` for
    None (the service's own variables, as the settings read them; default: the process's).

    Raises ConfigurationError naming the type and the name; never the block's values.
    """
    if name is None:
        from_settings = getattr(block_cls, "from_settings", None)
        if from_settings is None:
            raise ConfigurationError(f"name a {block_cls.__name__} block: it has no default "
                                     "from environment variables")
        found: BlockT = from_settings(settings or load_settings())
        return found
    try:
        loaded: BlockT = block_cls.load(name)  # type: ignore[attr-defined]
    except ValueError as e:  # Prefect: no block document of that name and type
        raise ConfigurationError(
            f"no {block_cls.__name__} block named {name!r}: save one in the Prefect UI "
            "(after 'envforge blocks register')") from e
    except Exception as e:  # httpx and OS errors when the Prefect API does not answer
        raise ConfigurationError(
            f"no {block_cls.__name__} block named {name!r} could be loaded: the Prefect API "
            f"did not answer ({type(e).__name__}); check PREFECT_API_URL") from e
    return loaded
