#!/usr/bin/env python3
"""An MCP server on the official Python SDK (``mcp`` 2.3.0, pinned in requirements.txt)
that speaks both eras: the stateless revision 2026-07-28 (``server/discover``, an envelope
on every request) and the ``initialize`` handshake, on one URL, for mcpscript's
stateless-client tests (tests/stateless_client.rs).

Usage:
    py_stateless_server.py [--legacy-only]   Streamable HTTP on 127.0.0.1, a port the OS picks
    py_stateless_server.py --stdio           stdio (the era is fixed by the first request)

Over HTTP it prints exactly one line on stdout once it accepts connections:
    listening http://127.0.0.1:PORT/mcp
``--legacy-only`` plays a server that predates 2026-07-28: it drops a 2026-07-28
``MCP-Protocol-Version`` header before the SDK sees it, so every request takes the
handshake era's path (``server/discover`` gets HTTP 400 -32600 "Missing session ID", as
from an SDK 1.x server).

What it offers:
    tools     echo(text) -> the text; greet_user -> asks the client for a name first
              (elicitation: on 2026-07-28 an ``input_required`` result)
    resource  test://hello (text/plain, "Hello, world")
    prompt    greet(name)
"""

from __future__ import annotations

import sys

import anyio
import uvicorn
from pydantic import BaseModel

from mcp.server.mcpserver import Elicit, ElicitationResult, MCPServer, Resolve
from typing import Annotated

HOST = "127.0.0.1"
PATH = "/mcp"

mcp = MCPServer("py-stateless-server", version="2.3.0-test", instructions="Speaks 2026-07-28 and the handshake.")


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


class NameAnswer(BaseModel):
    name: str


def ask_name() -> Elicit[NameAnswer]:
    return Elicit("What is your name?", NameAnswer)


@mcp.tool()
def greet_user(who: Annotated[ElicitationResult[NameAnswer], Resolve(ask_name)]) -> str:
    """Greets whoever the client names (asked with an elicitation)."""
    name = getattr(getattr(who, "data", None), "name", None) or getattr(who, "action", "?")
    return f"hello {name}"


@mcp.resource("test://hello", name="hello", mime_type="text/plain")
def hello() -> str:
    return "Hello, world"


@mcp.prompt()
def greet(name: str) -> str:
    return f"Say hello to {name}"


class LegacyOnly:
    """Drops a 2026-07-28 MCP-Protocol-Version header: the SDK serves only the handshake era."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            hs = [(k, v) for k, v in scope["headers"] if not (k == b"mcp-protocol-version" and v == b"2026-07-28")]
            scope = {**scope, "headers": hs}
        await self.app(scope, receive, send)


async def serve(legacy_only: bool) -> None:
    app = mcp.streamable_http_app(streamable_http_path=PATH, host=HOST)
    if legacy_only:
        app = LegacyOnly(app)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=0, log_level="warning"))

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await anyio.sleep(0.01)
        actual = server.servers[0].sockets[0].getsockname()[1]
        sys.stdout.write(f"listening http://{HOST}:{actual}{PATH}\n")
        sys.stdout.flush()

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await server.serve()
        tg.cancel_scope.cancel()


def main() -> None:
    args = sys.argv[1:]
    if args == ["--stdio"]:
        mcp.run("stdio")
    elif args in ([], ["--legacy-only"]):
        anyio.run(serve, bool(args))
    else:
        sys.stderr.write("usage: py_stateless_server.py [--legacy-only | --stdio]\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
