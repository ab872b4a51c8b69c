#!/usr/bin/env python3
"""Interop client built on the official Python MCP SDK (``mcp`` on PyPI, pinned in
requirements.txt).

Usage:
    py_client.py [--mode MODE] http://127.0.0.1:PORT/mcp       Streamable HTTP
    py_client.py [--mode MODE] sse+http://127.0.0.1:PORT/sse   legacy HTTP+SSE (2024-11-05)
    py_client.py [--mode MODE] stdio COMMAND [ARGS...]         stdio (spawns COMMAND)

It connects, lists the tools, calls ``echo`` with {"message": "interop"} and prints
exactly one JSON line on stdout:
    {"ok":true,"tools":[...],"echo":"<text>","serverName":"...","protocolVersion":"..."}
and exits 0; on any failure it prints {"ok":false,"error":"..."} and exits 1.

MODE (SDK 2.x only; also MCP_INTEROP_PY_MODE) is the SDK's connect mode: "legacy"
(initialize handshake), "auto" (default: probe server/discover, fall back to
initialize) or a stateless protocol version such as "2026-07-28". With SDK 1.x only
"legacy" behaviour exists and MODE is ignored.
The whole run is bounded by MCP_INTEROP_TIMEOUT_MS (default 20000 ms).
"""

from __future__ import annotations

import json
import os
import sys
import threading

TIMEOUT_S = float(os.environ.get("MCP_INTEROP_TIMEOUT_MS", "20000")) / 1000.0
ECHO_MESSAGE = "interop"
USAGE = "usage: py_client.py [--mode MODE] URL | stdio COMMAND [ARGS...]"

_printed = threading.Lock()


def emit(obj: dict, code: int) -> None:
    """Print the one result line and exit (first caller wins)."""
    if not _printed.acquire(blocking=False):
        return
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def leaf_error(exc: BaseException) -> BaseException:
    """Unwrap (nested) exception groups to their first leaf exception."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    exc = leaf_error(exc)
    msg = str(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def parse_args(argv: list[str]) -> tuple[str, list[str]]:
    mode = os.environ.get("MCP_INTEROP_PY_MODE", "auto")
    if len(argv) >= 2 and argv[0] == "--mode":
        mode, argv = argv[1], argv[2:]
    elif argv and argv[0].startswith("--mode="):
        mode, argv = argv[0].split("=", 1)[1], argv[1:]
    if not argv or (argv[0] == "stdio" and len(argv) < 2):
        raise ValueError(USAGE)
    return mode, argv


def text_of(result) -> str:
    if getattr(result, "isError", False) or getattr(result, "is_error", False):
        raise RuntimeError(f"echo returned isError: {result.content!r}")
    for item in result.content or []:
        if getattr(item, "type", None) == "text":
            return item.text
    raise RuntimeError(f"echo returned no text content: {result!r}")


def sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("mcp")
    except Exception:  # pragma: no cover - best effort
        return "unknown"


def open_transport(argv: list[str], *, v2: bool):
    """Return (kind, async context manager yielding the transport streams)."""
    target = argv[0]
    if target == "stdio":
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=argv[1], args=argv[2:], env=dict(os.environ))
        return "stdio", stdio_client(params)
    if target.startswith("sse+"):
        from mcp.client.sse import sse_client

        return "sse", sse_client(target[4:])
    if target.startswith(("http://", "https://")):
        if v2:
            from mcp.client.streamable_http import streamable_http_client

            return "http", streamable_http_client(target)
        from mcp.client.streamable_http import streamablehttp_client

        return "http", streamablehttp_client(target)
    raise ValueError(f"unsupported target {target!r}; {USAGE}")


async def run_v2(mode: str, argv: list[str]) -> dict:
    """SDK 2.x: the high-level ``mcp.Client`` (which owns the connect mode)."""
    from mcp import Client
    from mcp.types import Implementation

    kind, transport = open_transport(argv, v2=True)
    client = Client(
        transport,
        mode=mode,
        client_info=Implementation(name="mcpscript-interop-py", version="1.0.0"),
        read_timeout_seconds=TIMEOUT_S,
    )
    async with client:
        info = client.server_info
        proto = client.protocol_version
        listed = await client.list_tools()
        tools = [t.name for t in listed.tools]
        echo = text_of(await client.call_tool("echo", {"message": ECHO_MESSAGE}))
    return {
        "ok": True,
        "transport": kind,
        "tools": tools,
        "echo": echo,
        "serverName": info.name if info else None,
        "serverVersion": info.version if info else None,
        "protocolVersion": proto,
        "sdk": f"python mcp {sdk_version()}",
        "mode": mode,
    }


async def run_v1(argv: list[str]) -> dict:
    """SDK 1.x: transport context manager + ``ClientSession`` + ``initialize()``."""
    from datetime import timedelta

    from mcp import ClientSession
    from mcp.types import Implementation

    kind, transport = open_transport(argv, v2=False)
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(
            read,
            write,
            read_timeout_seconds=timedelta(seconds=TIMEOUT_S),
            client_info=Implementation(name="mcpscript-interop-py", version="1.0.0"),
        ) as session:
            init = await session.initialize()
            listed = await session.list_tools()
            tools = [t.name for t in listed.tools]
            echo = text_of(await session.call_tool("echo", {"message": ECHO_MESSAGE}))
    return {
        "ok": True,
        "transport": kind,
        "tools": tools,
        "echo": echo,
        "serverName": init.serverInfo.name,
        "serverVersion": init.serverInfo.version,
        "protocolVersion": str(init.protocolVersion),
        "sdk": f"python mcp {sdk_version()}",
        "mode": "legacy",
    }


async def main(argv: list[str]) -> dict:
    import anyio

    mode, argv = parse_args(argv)
    try:
        from mcp import Client  # noqa: F401  (2.x only)

        v2 = True
    except ImportError:
        v2 = False
    with anyio.fail_after(TIMEOUT_S):
        return await (run_v2(mode, argv) if v2 else run_v1(argv))


def entry() -> None:
    # Last-resort watchdog in case cancellation itself hangs (fail_after fires first).
    watchdog = threading.Timer(
        TIMEOUT_S + 5.0,
        lambda: emit({"ok": False, "error": f"hard timeout after {TIMEOUT_S + 5.0:.0f} s"}, 1),
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        import anyio

        result = anyio.run(main, sys.argv[1:])
    except BaseException as exc:  # noqa: BLE001 - report every failure the same way
        leaf = leaf_error(exc)
        if isinstance(leaf, TimeoutError) and not str(leaf):
            emit({"ok": False, "error": f"timed out after {TIMEOUT_S:.0f} s"}, 1)
        emit({"ok": False, "error": describe(exc)}, 1)
        return
    emit(result, 0)


if __name__ == "__main__":
    entry()
