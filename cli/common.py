"""Options shared by subcommands; each falls back to its ``BORDERFLOW_*`` variable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from streams.kafka.clients import client_options
from streams.kafka.connection import denial, refusal
from streams.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def kafka_option(func: F) -> F:
    return click.option(
        "--kafka", envvar="BORDERFLOW_KAFKA", default=None, help="Bootstrap servers host:port[,host:port] [BORDERFLOW_KAFKA]"
    )(func)


def kafka_failure(settings: Settings, exc: BaseException, doing: str) -> click.ClickException:
    """The error a command ends with when Kafka failed it: the cause named if the settings are (streams/kafka/connection.py)."""
    cause = asyncio.run(refusal(settings))
    return click.ClickException(f"{doing}: {f'Kafka refused the connection: {cause}' if cause else denial(exc)}")


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's values on top."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"BORDERFLOW_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"] else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise click.UsageError(f"invalid configuration: {problems}") from None
    try:
        settings.core()  # the windows, grace and retention must fit together
        client_options(settings)  # the client certificate and key load
    except ValueError as exc:
        raise click.UsageError(f"invalid configuration: {exc}") from None
    return settings
