#!/usr/bin/env python3
"""The official Python SDK client (``mcp`` 2.3.0, pinned in requirements.txt) in its
default ``mode="auto"`` against a server that speaks the stateless revision 2026-07-28:
the client sends ``server/discover`` first and adopts the revision it finds.

Usage:
    py_stateless_client.py http://127.0.0.1:PORT/mcp     Streamable HTTP
    py_stateless_client.py stdio COMMAND [ARGS...]       stdio (spawns COMMAND)

It lists the tools, calls ``echo``, reads ``mcpscript://readme``, gets the ``greeting``
prompt, calls ``test_tool_with_progress`` (counting progress callbacks) and
``test_tool_with_logging`` (counting log callbacks, with the per-request log opt-in),
calls ``test_elicitation`` (with an elicitation callback that accepts) and
``test_sampling`` (no sampling callback), and reads a missing resource. It prints exactly
one JSON line on stdout:
    {"ok":true,"protocolVersion":"...","serverName":"...","echo":"...","readme":"...",
     "prompt":"...","progress":N,"logs":N,"elicitation":{...},"sampling":{...},
     "missingResource":{...}}
where the last three are ``{"text":...}`` for a result or ``{"code":..,"message":..,"data":..}``
for an error; on any other failure ``{"ok":false,"error":"..."}`` and exit 1.
The whole run is bounded by MCP_INTEROP_TIMEOUT_MS (default 20000 ms).
"""

from __future__ import annotations

import json
import os
import sys

TIMEOUT_S = float(os.environ.get("MCP_INTEROP_TIMEOUT_MS", "20000")) / 1000.0


def text_of(result) -> str:
    for item in result.content or []:
        if getattr(item, "type", None) == "text":
            return item.text
    return ""


async def outcome(call) -> dict:
    """A call's result text, or its JSON-RPC error."""
    from mcp.shared.exceptions import MCPError

    try:
        result = await call
    except MCPError as e:
        return {"code": e.code, "message": e.message, "data": e.data}
    if hasattr(result, "contents"):
        return {"text": result.contents[0].text if result.contents else ""}
    return {"text": text_of(result), "isError": bool(result.is_error)}


async def main(argv: list[str]) -> dict:
    import anyio
    import mcp_types as types
    from mcp import Client

    if not argv or (argv[0] == "stdio" and len(argv) < 2):
        raise ValueError("usage: py_stateless_client.py URL | stdio COMMAND [ARGS...]")
    if argv[0] == "stdio":
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        target = stdio_client(StdioServerParameters(command=argv[1], args=argv[2:], env=dict(os.environ)))
    else:
        target = argv[0]

    progress: list[float] = []
    logs: list[str] = []

    async def on_progress(done, total, message):
        progress.append(done)

    async def on_log(params):
        logs.append(str(params.data))

    async def on_elicit(context, params):
        return types.ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.com"})

    with anyio.fail_after(TIMEOUT_S):
        async with Client(
            target,
            mode="auto",
            client_info=types.Implementation(name="mcpscript-interop-py-stateless", version="1.0.0"),
            elicitation_callback=on_elicit,
            logging_callback=on_log,
            log_level="info",
            read_timeout_seconds=TIMEOUT_S,
        ) as client:
            info = client.server_info
            out = {
                "ok": True,
                "protocolVersion": client.protocol_version,
                "serverName": info.name if info else None,
                "tools": [t.name for t in (await client.list_tools()).tools],
                "echo": text_of(await client.call_tool("echo", {"message": "stateless"})),
                "readme": (await client.read_resource("mcpscript://readme")).contents[0].text,
                "prompt": (await client.get_prompt("greeting", {"name": "Ada"})).messages[0].content.text,
            }
            await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
            await client.call_tool("test_tool_with_logging", {})
            out["elicitation"] = await outcome(client.call_tool("test_elicitation", {"message": "Who are you?"}))
            out["sampling"] = await outcome(client.call_tool("test_sampling", {"prompt": "hi"}))
            out["missingResource"] = await outcome(client.read_resource("test://nope"))
            out["progress"] = len(progress)
            out["logs"] = len(logs)
    return out


if __name__ == "__main__":
    import anyio

    try:
        result = anyio.run(main, sys.argv[1:])
    except BaseException as exc:  # noqa: BLE001 - report every failure the same way
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(1)
    print(json.dumps(result, separators=(",", ":")), flush=True)
