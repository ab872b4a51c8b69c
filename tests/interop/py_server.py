#!/usr/bin/env python3
"""A small third-party MCP server built on the official Python SDK (``mcp`` 2.x,
pinned in requirements.txt), for mcpscript's interop tests.

Usage:
    py_server.py [PORT]        PORT defaults to 0 (any free port)

It serves Streamable HTTP at http://127.0.0.1:PORT/mcp with the SDK's defaults
(``MCPServer``, the successor of v1's ``FastMCP``), and prints exactly one line on
stdout once it accepts connections:
    listening http://127.0.0.1:PORT/mcp
Everything else (uvicorn's and the SDK's logs) goes to stderr.

What it offers, like a typical small server:
    tools     echo(message: str) -> the message; add(a: float, b: float) -> the sum
    resource  info://server (text/plain)
    prompt    greet(name: str)
"""

from __future__ import annotations

import sys

import anyio
import uvicorn
from mcp.server import MCPServer

HOST = "127.0.0.1"
PATH = "/mcp"

mcp = MCPServer("py-interop-server", version="1.0.0", instructions="A small test server: echo, add, a resource, a prompt.")


@mcp.tool()
def echo(message: str) -> str:
    """Echo the message back."""
    return message


@mcp.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@mcp.resource("info://server", name="server-info", mime_type="text/plain")
def server_info() -> str:
    """What this server is."""
    return "py-interop-server: a small MCP server on the official Python SDK"


@mcp.prompt()
def greet(name: str) -> str:
    """Ask the model to greet someone."""
    return f"Please write a short, friendly greeting for {name}."


async def serve(port: int) -> None:
    app = mcp.streamable_http_app(streamable_http_path=PATH, host=HOST)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))

    async def announce() -> None:
        # Once uvicorn listens, print the port it got (the real one when PORT is 0).
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
    if len(args) > 1 or (args and not args[0].isdigit()):
        sys.stderr.write("usage: py_server.py [PORT]\n")
        sys.exit(2)
    anyio.run(serve, int(args[0]) if args else 0)


if __name__ == "__main__":
    main()
