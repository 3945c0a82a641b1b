"""linstor-names serve | emulator | dev | cache | repair | openapi | token | record | replay."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import ValidationError

from app.client_cli import register as register_client
from app.settings import Settings

if TYPE_CHECKING:
    from app.cache.store import CacheStore
    from app.cache.sync import SyncResult


def _settings(env_file: str | None) -> Settings:
    if env_file:
        _linstor_env(env_file)
    try:
        return Settings(_env_file=env_file) if env_file else Settings()
    except ValidationError as exc:
        # A bad prefix or namespace must stop the service with a clear message, not a traceback.
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        sys.exit("linstor-names: invalid settings (LINSTOR_NAMES_*):\n" + "\n".join(lines))


def _linstor_env(env_file: str) -> None:
    """Put the file's LS_* lines into the environment, where the LINSTOR connection is read from."""
    from dotenv import dotenv_values

    if not Path(env_file).is_file():  # pydantic-settings would ignore a missing file without a word
        sys.exit(f"linstor-names: --env-file {env_file}: no such file")
    for key, value in dotenv_values(env_file).items():
        if key.startswith("LS_") and value is not None:
            os.environ.setdefault(key, value)  # the environment wins, as it does for LINSTOR_NAMES_*


def _check_port(host: str, port: int) -> None:
    """Exit with one line when `host`:`port` cannot be bound, rather than uvicorn's tracebacks."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            sys.exit(f"linstor-names: port {port} on {host} is in use")
        sys.exit(f"linstor-names: cannot listen on port {port} on {host}: {exc.strerror or exc}")


def _check_bind(settings: Settings, host: str) -> None:
    """Exit with one line when `host` would serve without tokens off loopback; say so when tokens are off."""
    from app.auth_tokens import configured_tokens, is_loopback, unauthenticated_bind_refusal

    try:
        tokens = configured_tokens(settings)
    except (OSError, ValueError) as exc:
        sys.exit(
            f"linstor-names: cannot use the tokens (LINSTOR_NAMES_TOKENS, LINSTOR_NAMES_TOKENS_FILE): {exc}"
        )
    refusal = unauthenticated_bind_refusal(
        host, has_tokens=bool(tokens), allow_unauthenticated=settings.allow_unauthenticated
    )
    if refusal:
        sys.exit(refusal)
    if not tokens:
        where = "loopback only" if is_loopback(host) else f"{host} (LINSTOR_NAMES_ALLOW_UNAUTHENTICATED)"
        print(f"linstor-names: no tokens configured, authentication is off: serving {where}", file=sys.stderr)


def _listener(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The service's uvicorn options, or exit with one line when its TLS files cannot be used."""
    from app.listener import ListenerError, listener_options

    try:
        return listener_options(settings, args.log_level)
    except ListenerError as exc:
        sys.exit(f"linstor-names: {exc}")


def _logging(args: argparse.Namespace, settings: Settings, default: str) -> None:
    """Log in --log-format, else LINSTOR_NAMES_LOG_FORMAT, else `default`; uvicorn's lines included."""
    from app.logs import LogFormat, configure

    configure(LogFormat(args.log_format or settings.log_format or default), args.log_level)


def _serve(args: argparse.Namespace) -> None:
    from app.main import create_app

    settings = _settings(args.env_file)
    _check_bind(settings, args.host)
    listener = _listener(args, settings)
    _check_port(args.host, args.port)
    app = create_app(settings)
    _logging(args, settings, "json")
    # The code, the app and its routes live as long as the process (~140k objects): out of the collector's
    # sight, a full collection no longer walks them. It took ~90 ms, a pause any request in flight waited out.
    gc.freeze()
    # uvicorn's start-up line says "running on https://..." when the listener has TLS
    uvicorn.run(app, host=args.host, port=args.port, **listener)


def _emulator(args: argparse.Namespace) -> None:
    from app.emulator import run_emulator

    satellites: dict[str, str] | None = None
    if args.satellite:
        # NAME or NAME=HOSTNAME: a satellite that answers when a node of that name is created
        pairs = (item.partition("=") for item in args.satellite)
        satellites = {name: host or name for name, _, host in pairs}
    run_emulator(
        args.host,
        args.port,
        state_file=args.state_file,
        layout=args.layout,
        satellites=satellites,
        drbd=args.drbd,
        controls=args.controls,
        state_dir=args.state_dir,
    )


def _dev(args: argparse.Namespace) -> None:
    """The embedded default: the LINSTOR emulator and the service in one process, SQLite cache."""
    from app.emulator import EmulatorState, create_emulator_app
    from app.linstor.config import ConnectionConfig
    from app.main import create_app

    settings = _settings(args.env_file)
    _check_bind(settings, args.host)
    listener = _listener(args, settings)
    _check_port("127.0.0.1", args.emulator_port)
    _check_port(args.host, args.port)
    # the soak and benchmark scripts inject faults through `dev`; the emulator listens on loopback only
    emulator = create_emulator_app(state=EmulatorState(), controls=True)
    service = create_app(settings, linstor=ConnectionConfig(urls=(f"http://127.0.0.1:{args.emulator_port}",)))
    _logging(args, settings, "text")  # a person reads dev's lines on a terminal
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                emulator,
                host="127.0.0.1",
                port=args.emulator_port,
                access_log=False,
                log_level=args.log_level,
                log_config=None,
            )
        ),
        uvicorn.Server(uvicorn.Config(service, host=args.host, port=args.port, **listener)),
    ]
    scheme = "https" if "ssl_certfile" in listener else "http"
    print(
        f"LINSTOR emulator on http://127.0.0.1:{args.emulator_port}; "
        f"linstor-names on {scheme}://{args.host}:{args.port} (Swagger UI: /docs); "
        f"cache {settings.cache_url}",
        file=sys.stderr,
    )

    async def both() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    asyncio.run(both())


def _cache(args: argparse.Namespace) -> None:
    from app.cache.store import CacheStore
    from app.errors import ServiceError

    settings = _settings(args.env_file)
    if not settings.cache_enabled:
        sys.exit(
            "linstor-names: no cache configured "
            "(LINSTOR_NAMES_CACHE_URL=none or LINSTOR_NAMES_CACHE_MODE=off)"
        )
    store = CacheStore.open(settings.cache_url)
    if args.cache_command == "migrate":
        store.upgrade()
        print(f"cache schema at head: {settings.cache_url}")
        asyncio.run(store.close())
        return
    try:
        result = asyncio.run(_rebuild(settings, store))
    except ServiceError as exc:  # LINSTOR down: one line for the operator, not a traceback
        sys.exit(f"linstor-names: {exc.detail}; the cache was left as it was")
    print(f"cache rebuilt from LINSTOR: {result.volumes} volumes in {result.duration:.2f}s")


async def _rebuild(settings: Settings, store: CacheStore) -> SyncResult:
    from app.cache_service import CacheService
    from app.linstor.config import ConnectionConfig
    from app.naming import AuxCodec
    from app.resolver import Resolver
    from app.services import linstor_client

    try:
        await asyncio.to_thread(store.upgrade)
        # the service's timeouts and retries: a listing that the service can take, the CLI can take too
        async with linstor_client(settings, ConnectionConfig.from_env(os.environ)) as client:
            codec = AuxCodec(settings.volume_prefix, settings.property_namespace)
            resolver = Resolver(client, codec, store, settings.cache_mode)
            return await CacheService(store, client, resolver, settings).rebuild()
    finally:
        await store.close()


def _repair(args: argparse.Namespace) -> None:
    from app.errors import ServiceError

    settings = _settings(args.env_file)
    try:
        failed = asyncio.run(_repair_pools(settings, args.pool, apply=args.apply))
    except ServiceError as exc:  # LINSTOR down, or no such pool: one line for the operator
        sys.exit(f"linstor-names repair: {exc.detail}")
    if failed:
        sys.exit(1)


async def _repair_pools(settings: Settings, pool: str | None, *, apply: bool) -> bool:
    """One pass per pool, each report printed when its pass ends; whether any action failed."""
    from app.linstor.config import ConnectionConfig
    from app.naming import AuxCodec
    from app.repair import Outcome, RepairService
    from app.resolver import Resolver
    from app.services import linstor_client
    from app.settings import CacheMode
    from app.volumes import VolumeService

    failed = False
    async with linstor_client(settings, ConnectionConfig.from_env(os.environ)) as client:
        codec = AuxCodec(settings.volume_prefix, settings.property_namespace)
        # without the cache: a service's verify mode notices what went at its next lookup, trust mode at the
        # next resync
        volumes = VolumeService(client, Resolver(client, codec, None, CacheMode.OFF), settings)
        repair = RepairService(volumes)
        for name in [pool] if pool else [p.name for p in await volumes.pools()]:
            report = await repair.repair(name, apply=apply)
            mode = "applied" if report.applied else "dry run: pass --apply to act"
            found, grace = len(report.orphans), report.grace_seconds
            print(f"pool {report.pool}: {found} found ({mode}; grace {grace:g}s)")
            for o in report.orphans:
                where = f"rd={o.rd} snapshot={o.snapshot or '-'}" + (f" key={o.key}" if o.key else "")
                error = f" error={o.error}" if o.error else ""
                print(f"  {o.kind} {where} action={o.action} outcome={o.outcome}{error} reason={o.reason}")
                failed = failed or o.outcome is Outcome.FAILED
    return failed


def _openapi(args: argparse.Namespace) -> None:
    from app.main import create_app

    print(json.dumps(create_app(Settings(cache_url="none")).openapi(), indent=2, sort_keys=False))


def _token_create(args: argparse.Namespace) -> None:
    from app.auth_tokens import Scope, create_token

    try:
        token, hashed = create_token(args.name, [Scope.parse(s) for s in args.scopes.split(",") if s.strip()])
    except ValueError as exc:
        sys.exit(f"linstor-names token create: {exc}")
    # the token on stdout alone, so that a script can capture it; the line for the tokens file after it
    print(token)
    print(hashed.line())
    print(
        "linstor-names: the first line is the token, shown once; add the second line to the tokens file "
        "(LINSTOR_NAMES_TOKENS_FILE)",
        file=sys.stderr,
    )


def _record(args: argparse.Namespace) -> None:
    from app.transcripts.recorder import Recorder, Upstream

    try:
        upstream = Upstream(
            url=args.upstream,
            ca_file=args.ca_file,
            client_cert=args.client_cert,
            client_key=args.client_key,
            timeout=args.timeout,
        )
        upstream.verify()  # a missing or bad CA or certificate file stops us here, not at the first request
    except ValueError as exc:
        sys.exit(f"linstor-names record: {exc}")
    except OSError as exc:  # ssl.SSLError included
        sys.exit(f"linstor-names record: cannot load --ca-file / --client-cert / --client-key: {exc}")
    try:
        # "x": a transcript someone means to send us is never overwritten by a second run
        sink = Path(args.out).open("a" if args.append else "x", encoding="utf-8")
    except FileExistsError:
        sys.exit(
            f"linstor-names record: {args.out} exists; pass --append to add to it, or choose another --out"
        )
    except OSError as exc:
        sys.exit(f"linstor-names record: cannot write {args.out}: {exc.strerror}")
    with sink:
        print(
            f"recording proxy on http://{args.host}:{args.port} -> {upstream.url}; "
            f"{'appending to' if args.append else 'writing'} {args.out}",
            file=sys.stderr,
        )
        # the controller's Date and Server headers go through, so uvicorn must not add its own
        uvicorn.run(
            Recorder(upstream, sink),
            host=args.host,
            port=args.port,
            access_log=False,
            log_level=args.log_level,
            server_header=False,
            date_header=False,
        )


def _replay(args: argparse.Namespace) -> None:
    from app.transcripts.replay import main as replay

    sys.exit(replay(args.transcript, args.verbose))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `linstor-names` console script."""
    parser = argparse.ArgumentParser(prog="linstor-names", description=__doc__)
    parser.add_argument(
        "--env-file", help="read LINSTOR_NAMES_* and LS_* settings from this file too (the environment wins)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "text"],
        help="serve and dev: log lines as JSON objects or text (default: json for serve, text for dev)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (LINSTOR from LS_CONTROLLERS)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=_serve)

    emu = sub.add_parser("emulator", help="run the LINSTOR REST emulator")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=3370)
    emu.add_argument("--state-file", help="load state from this JSON file at start, save it at shutdown")
    emu.add_argument(
        "--layout",
        choices=["default", "bare"],
        default="default",
        help="default: server01-03 with a thin pool each; bare: no nodes, build the cluster with the API",
    )
    emu.add_argument(
        "--satellite",
        action="append",
        metavar="NAME[=HOSTNAME]",
        help="a node name whose satellite answers once the node is created (repeatable)",
    )
    emu.add_argument(
        "--drbd",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the satellites have DRBD and LVM (default: yes for the default layout, no for bare)",
    )
    emu.add_argument(
        "--controls",
        action="store_true",
        help="enable the unauthenticated /_emulator control routes (faults, reset, save/load, ...)",
    )
    emu.add_argument("--state-dir", help="the directory /_emulator/save and /_emulator/load may use")
    emu.set_defaults(func=_emulator)

    dev = sub.add_parser("dev", help="the emulator and the service in one process (make run)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--emulator-port", type=int, default=3370)
    dev.set_defaults(func=_dev)

    cache = sub.add_parser("cache", help="manage the lookup cache")
    # status always asks a running service, and rebuild does with --url (app/client_cli.py adds the options)
    cache.add_argument("cache_command", choices=["migrate", "rebuild", "status"])
    cache.set_defaults(func=_cache)

    repair = sub.add_parser("repair", help="report (and with --apply, repair) orphans once, then exit")
    repair.add_argument("--pool", help="one pool (resource group); default: every pool")
    repair.add_argument("--apply", action="store_true", help="act; without it, a dry run")
    repair.set_defaults(func=_repair)

    sub.add_parser("openapi", help="print the OpenAPI document").set_defaults(func=_openapi)

    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="print a new token once, and its line for the tokens file")
    create.add_argument("name", help="who uses it: audit lines name the token")
    create.add_argument("--scopes", default="read", help="comma-separated: read, write, admin (default read)")
    create.set_defaults(func=_token_create)

    record = sub.add_parser("record", help="a proxy to a LINSTOR controller that records every exchange")
    record.add_argument("--upstream", required=True, help="the controller's base URL, http(s)://host:port")
    record.add_argument("--out", required=True, help="the transcript to write (JSON lines)")
    record.add_argument("--host", default="127.0.0.1")
    record.add_argument("--port", type=int, default=3371)
    record.add_argument("--append", action="store_true", help="add to an existing transcript")
    record.add_argument("--ca-file", help="PEM CA file that signed an https controller's certificate")
    record.add_argument("--client-cert", help="PEM client certificate (with its key, or see --client-key)")
    record.add_argument("--client-key", help="PEM key of the client certificate")
    record.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the controller (default 300)"
    )
    record.set_defaults(func=_record)

    replay = sub.add_parser("replay", help="replay a transcript against the emulator, compare the answers")
    replay.add_argument("transcript", help="a JSON-lines transcript (linstor-names record --out)")
    replay.add_argument("--verbose", action="store_true", help="print each difference, not only the figures")
    replay.set_defaults(func=_replay)

    register_client(sub)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
