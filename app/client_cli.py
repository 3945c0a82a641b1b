"""`linstor-names volume|snapshot|resolve|cache status`: a client of a running service, over HTTP.

Exit codes (documented in the README): 0 ok, 1 usage error (and any other 4xx: 401, 403, 413, 422),
2 not found (404), 3 conflict (409), 4 upstream failure (502, 503, 504, any other 5xx, or the service
unreachable). An error prints one line on stderr, `<code>: <detail>`, from the problem+json answer.

argparse rather than click or typer: the console script already uses it, a dozen subcommands do not
justify a dependency, and the only thing argparse gets wrong for us (usage errors exit 2, our "not found")
is fixed in `_strict` below.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from app.identity import VolumeType

OK, USAGE, NOT_FOUND, CONFLICT, UPSTREAM = 0, 1, 2, 3, 4
DEFAULT_URL = "http://127.0.0.1:8000"
TYPES = [t.value for t in VolumeType]


class ClientError(Exception):
    """A failure to report as one `<code>: <detail>` line and an exit code."""

    def __init__(self, exit_code: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.exit_code = exit_code


def exit_code_for(status: int) -> int:
    """The documented exit code of an HTTP error status (the one home of the mapping)."""
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status >= 500:
        return UPSTREAM
    return USAGE


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code") or f"http_{response.status_code}")
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    raise ClientError(exit_code_for(response.status_code), code, detail)


class Client:
    """The service's HTTP API, as the subcommands need it: one httpx.Client per invocation."""

    def __init__(self, args: argparse.Namespace) -> None:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        self._http = httpx.Client(base_url=args.url, headers=headers, timeout=args.timeout)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; translate transport failures and problem answers into ClientError."""
        try:
            with self._http:
                response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ClientError(UPSTREAM, "timeout", f"{self._http.base_url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise ClientError(UPSTREAM, "unreachable", f"{self._http.base_url}: {exc}") from exc
        _raise_for_problem(response)
        return response


# ---- rendering ------------------------------------------------------------------------------------


def _size(volume: dict[str, Any]) -> str:
    total = float(sum(part.get("size_bytes", 0) for part in volume.get("volumes", [])))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if total < 1024 or unit == "TiB":
            return f"{total:.0f}{unit}" if unit == "B" else f"{total:.1f}{unit}"
        total /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _fields(pairs: Sequence[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {'' if v is None else v}" for k, v in pairs)


def _volume_fields(v: dict[str, Any]) -> str:
    return _fields(
        [
            ("pool", v["pool"]),
            ("project", v["project"]),
            ("type", v["type"]),
            ("name", v["name"]),
            ("content_type", v["content_type"]),
            ("size", _size(v)),
            ("linstor_name", v["linstor_name"]),
            ("description", v.get("description")),
            ("snapshots", ", ".join(v.get("snapshots", []))),
        ]
    )


def _volume_table(body: dict[str, Any]) -> str:
    rows = [[v["name"], v["type"], v["project"], _size(v), v["linstor_name"]] for v in body["volumes"]]
    return _table(["NAME", "TYPE", "PROJECT", "SIZE", "LINSTOR NAME"], rows)


def _snapshot_table(body: dict[str, Any]) -> str:
    rows = [[s["name"], s.get("created_on") or "", s["linstor_name"]] for s in body["snapshots"]]
    return _table(["NAME", "CREATED", "LINSTOR NAME"], rows)


def _snapshot_fields(s: dict[str, Any]) -> str:
    return _fields(
        [("name", s["name"]), ("created_on", s.get("created_on")), ("linstor_name", s["linstor_name"])]
    )


def _resolution_fields(r: dict[str, Any]) -> str:
    return (
        _fields([("kind", r["kind"]), ("snapshot", r.get("snapshot"))]) + "\n" + _volume_fields(r["volume"])
    )


def _dict_fields(body: dict[str, Any]) -> str:
    return _fields([(k, ", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in body.items()])


Render = Callable[[dict[str, Any]], str]


# ---- commands -------------------------------------------------------------------------------------


def _volumes(args: argparse.Namespace) -> str:
    return f"/v1/pools/{quote(args.pool, safe='')}/volumes"


def _volume(args: argparse.Namespace) -> str:
    return f"{_volumes(args)}/{args.type}/{quote(args.name, safe='')}"


def _snapshot(args: argparse.Namespace) -> str:
    return f"{_volume(args)}/snapshots/{quote(args.snapshot, safe='')}"


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any], Render | None]:
    """The HTTP call of a subcommand and how to render its answer as a table."""
    project = {"project": args.project} if getattr(args, "project", None) else {}
    match args.client_command:
        case "volume list":
            params = {**project, **({"type": args.type} if args.type else {})}
            return "GET", _volumes(args), {"params": params}, _volume_table
        case "volume show":
            return "GET", _volume(args), {"params": project}, _volume_fields
        case "volume create":
            body = {"name": args.name, "type": args.type, "project": args.project or "default"}
            body |= {k: v for k, v in [("size", args.size), ("content_type", args.content_type)] if v}
            body |= {"description": args.description} if args.description is not None else {}
            return "POST", _volumes(args), {"json": body}, _volume_fields
        case "volume rename":
            return (
                "PATCH",
                _volume(args),
                {"params": project, "json": {"name": args.new_name}},
                _volume_fields,
            )
        case "volume copy":
            source = {"type": args.type, "name": args.name, "project": args.project, "pool": args.pool}
            source |= {"snapshot": args.snapshot} if args.snapshot else {}
            body = {"name": args.new_name, "type": args.type, "source": source}
            body["project"] = args.target_project or args.project or "default"
            target = args.target_pool or args.pool
            return "POST", f"/v1/pools/{quote(target, safe='')}/volumes", {"json": body}, _volume_fields
        case "volume delete":
            return "DELETE", _volume(args), {"params": project}, None
        case "snapshot create":
            path = f"{_volume(args)}/snapshots"
            return "POST", path, {"params": project, "json": {"name": args.snapshot}}, _snapshot_fields
        case "snapshot list":
            return "GET", f"{_volume(args)}/snapshots", {"params": project}, _snapshot_table
        case "snapshot rename":
            return (
                "PATCH",
                _snapshot(args),
                {"params": project, "json": {"name": args.new_name}},
                _snapshot_fields,
            )
        case "snapshot restore":
            body = {"delete_newer_snapshots": args.delete_newer}
            return "POST", f"{_snapshot(args)}/restore", {"params": project, "json": body}, _dict_fields
        case "snapshot delete":
            return "DELETE", _snapshot(args), {"params": project}, None
        case "resolve":
            return "GET", f"/v1/resolve/{quote(args.linstor_name, safe='')}", {}, _resolution_fields
        case "cache status":
            return "GET", "/v1/cache", {}, _dict_fields
        case "cache rebuild":
            return "POST", "/v1/cache/rebuild", {}, _dict_fields
    raise AssertionError(args.client_command)  # pragma: no cover


LONG = {"volume copy", "cache rebuild"}


def run(args: argparse.Namespace) -> int:
    """Run one client subcommand; print the answer on stdout, or one error line on stderr."""
    method, path, kwargs, render = _request(args)
    if args.client_command in LONG and sys.stderr.isatty():
        sys.stderr.write(f"{args.client_command}: working...\n")
        sys.stderr.flush()
    try:
        response = Client(args).call(method, path, **kwargs)
    except ClientError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.exit_code
    if response.status_code == 204 or render is None:
        return OK
    sys.stdout.write((response.text if args.output == "json" else render(response.json())) + "\n")
    return OK


def _main(args: argparse.Namespace) -> NoReturn:
    sys.exit(run(args))


# ---- the parsers ----------------------------------------------------------------------------------


def _usage_error(parser: argparse.ArgumentParser) -> Callable[[str], NoReturn]:
    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"usage: {message}\n")
        sys.exit(USAGE)

    return error


def _strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Usage errors exit 1, not argparse's 2 (our "not found"), unknown arguments included: argparse
    leaves a subcommand's unknown arguments to the root parser, whose error we do not own."""
    parser.error = _usage_error(parser)  # type: ignore[method-assign,assignment]
    known = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = known(args, namespace)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign,assignment]
    return parser


def _add_connection(parser: argparse.ArgumentParser, url: str | None) -> argparse.ArgumentParser:
    parser.add_argument(
        "--url", default=url, help=f"the service (env LINSTOR_NAMES_URL, default {DEFAULT_URL})"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("LINSTOR_NAMES_TOKEN"),
        help="bearer token (env LINSTOR_NAMES_TOKEN)",
    )
    parser.add_argument("--output", "-o", choices=["table", "json"], default="table")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default 300)")
    return parser


def _group(sub: Any, name: str, help_text: str) -> Any:
    group = _strict(sub.add_parser(name, help=help_text))
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _leaf(sub: Any, group: str, name: str, parents: list[argparse.ArgumentParser], help_text: str) -> Any:
    leaf = _strict(sub.add_parser(name, parents=parents, help=help_text))
    leaf.set_defaults(func=_main, client_command=f"{group} {name}")
    return leaf


def register(subparsers: Any) -> None:
    """Add the client subcommands to the console script (`cache status` joins its `cache` command)."""
    common = _add_connection(argparse.ArgumentParser(add_help=False), _env_url())
    volume = argparse.ArgumentParser(add_help=False, parents=[common])
    volume.add_argument("--pool", required=True, help="the pool (LINSTOR resource group)")
    volume.add_argument("--project", help="the Incus project (default: default; list: all)")
    key = argparse.ArgumentParser(add_help=False, parents=[volume])
    key.add_argument("type", choices=TYPES)
    key.add_argument("name")

    vols = _group(subparsers, "volume", "a client of the service: volumes")
    listing = _leaf(vols, "volume", "list", [volume], "list the pool's volumes")
    listing.add_argument("--type", choices=TYPES, help="only this type")
    _leaf(vols, "volume", "show", [key], "one volume")
    create = _leaf(vols, "volume", "create", [key], "create a volume")
    create.add_argument("--size", help="e.g. 10GiB (default: the service's)")
    create.add_argument("--content-type", choices=["filesystem", "block", "iso"])
    create.add_argument("--description")
    _leaf(vols, "volume", "rename", [key], "rename a volume").add_argument("new_name")
    copy = _leaf(vols, "volume", "copy", [key], "copy a volume (or one of its snapshots) to a new one")
    copy.add_argument("new_name")
    copy.add_argument("--snapshot", help="copy this snapshot rather than the volume")
    copy.add_argument("--target-pool", help="default: the source's pool")
    copy.add_argument("--target-project", help="default: the source's project")
    _leaf(vols, "volume", "delete", [key], "delete a volume")

    snap = argparse.ArgumentParser(add_help=False, parents=[key])
    snap.add_argument("snapshot")
    snaps = _group(subparsers, "snapshot", "a client of the service: snapshots")
    _leaf(snaps, "snapshot", "create", [snap], "snapshot a volume")
    _leaf(snaps, "snapshot", "list", [key], "a volume's snapshots")
    _leaf(snaps, "snapshot", "rename", [snap], "rename a snapshot").add_argument("new_name")
    restore = _leaf(snaps, "snapshot", "restore", [snap], "restore a volume to a snapshot")
    restore.add_argument("--delete-newer", action="store_true", help="delete the snapshots newer than it")
    _leaf(snaps, "snapshot", "delete", [snap], "delete a snapshot")

    resolve = _strict(subparsers.add_parser("resolve", parents=[common], help="the volume of a LINSTOR name"))
    resolve.add_argument("linstor_name")
    resolve.set_defaults(func=_main, client_command="resolve")

    _extend_cache(subparsers)


def _env_url() -> str:
    return os.environ.get("LINSTOR_NAMES_URL", DEFAULT_URL)


def _extend_cache(subparsers: Any) -> None:
    """`cache migrate|rebuild` work on the local cache; `status` always asks a running service, and so does
    `rebuild --url`. Without `--url` a rebuild stays local, as before."""
    cache: argparse.ArgumentParser = subparsers.choices["cache"]
    _add_connection(cache, None)
    local = cache.get_default("func")

    def dispatch(args: argparse.Namespace) -> None:
        if args.cache_command == "status" or (args.cache_command == "rebuild" and args.url):
            args.url = args.url or _env_url()
            args.client_command = f"cache {args.cache_command}"
            _main(args)
        local(args)

    cache.set_defaults(func=dispatch)
