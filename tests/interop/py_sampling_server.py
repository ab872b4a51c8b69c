#!/usr/bin/env python3
"""A small server on the official Python SDK (``mcp`` 2.x) whose tool asks the client
for a completion (``sampling/createMessage``), for mcpscript's interop tests
(tests/interop_server_requests.rs).

Usage:
    py_sampling_server.py      listens on 127.0.0.1, a port the OS picks

It serves Streamable HTTP at http://127.0.0.1:PORT/mcp and prints exactly one line on
stdout once it accepts connections:
    listening http://127.0.0.1:PORT/mcp

Tool: summarize(text: str) sends sampling/createMessage (on the tool call's own event
stream) and returns the text of the client's answer, prefixed with "model said: ".
"""

from __future__ import annotations

import sys
import warnings

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import SamplingMessage, TextContent

HOST = "127.0.0.1"
PATH = "/mcp"

mcp = MCPServer("py-sampling-server", version="1.0.0")


@mcp.tool()
async def summarize(text: str, ctx: Context) -> str:
    """Ask the client's model to summarize the text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sampling is deprecated as of 2026-07-28
        result = await ctx.session.create_message(
            [SamplingMessage(role="user", content=TextContent(text=f"Summarize: {text}"))],
            max_tokens=50,
            related_request_id=ctx.request_id,
        )
    content = result.content
    said = content.text if isinstance(content, TextContent) else repr(content)
    return f"model said: {said}"


async def serve() -> None:
    app = mcp.streamable_http_app(streamable_http_path=PATH, host=HOST)
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


if __name__ == "__main__":
    anyio.run(serve)
