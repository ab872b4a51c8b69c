#!/usr/bin/env node
// Interop client built on the official TypeScript MCP SDK (pinned in package.json).
//
// Usage:
//   node sdk_client.mjs http://127.0.0.1:PORT/mcp          Streamable HTTP
//   node sdk_client.mjs sse+http://127.0.0.1:PORT/sse      legacy HTTP+SSE (2024-11-05)
//   node sdk_client.mjs ws://127.0.0.1:PORT/               WebSocket (subprotocol "mcp")
//   node sdk_client.mjs stdio COMMAND [ARGS...]            stdio (spawns COMMAND)
//
// It connects (initialize + notifications/initialized), lists the tools, calls
// `echo` with {"message":"interop"} and prints exactly one JSON line on stdout:
//   {"ok":true,"tools":[...],"echo":"<text>","serverName":"...","protocolVersion":"..."}
// and exits 0; on any failure it prints {"ok":false,"error":"..."} and exits 1.
// Everything is bounded by MCP_INTEROP_TIMEOUT_MS (default 20000 ms).

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const TIMEOUT_MS = Number(process.env.MCP_INTEROP_TIMEOUT_MS || 20000);
const ECHO_MESSAGE = "interop";

let finished = false;
let activeTransport = null; // to kill a spawned stdio server on the way out
function finish(obj, code) {
  if (finished) return;
  finished = true;
  try {
    const child = activeTransport?._process;
    if (child && child.exitCode === null) child.kill("SIGKILL");
  } catch (_) {
    /* ignored */
  }
  process.stdout.write(JSON.stringify(obj) + "\n", () => process.exit(code));
  // In case the write callback never fires (closed pipe), still exit.
  setTimeout(() => process.exit(code), 1000).unref();
}
function fail(err) {
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  finish({ ok: false, error: msg }, 1);
}

process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
setTimeout(() => fail(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS).unref();
// Keep the process alive until finish() exits (the timer above is unref'd).
const keepAlive = setInterval(() => {}, 1 << 30);

function usage() {
  return "usage: sdk_client.mjs URL | stdio COMMAND [ARGS...]";
}

async function makeTransport(argv) {
  if (argv.length === 0) throw new Error(usage());
  if (argv[0] === "stdio") {
    if (argv.length < 2) throw new Error(usage());
    const { StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js");
    return {
      kind: "stdio",
      transport: new StdioClientTransport({
        command: argv[1],
        args: argv.slice(2),
        env: { ...process.env },
        stderr: "inherit",
      }),
    };
  }
  const target = argv[0];
  if (target.startsWith("sse+")) {
    const { SSEClientTransport } = await import("@modelcontextprotocol/sdk/client/sse.js");
    return { kind: "sse", transport: new SSEClientTransport(new URL(target.slice(4))) };
  }
  if (target.startsWith("ws://") || target.startsWith("wss://")) {
    const { WebSocketClientTransport } = await import("@modelcontextprotocol/sdk/client/websocket.js");
    return { kind: "ws", transport: new WebSocketClientTransport(new URL(target)) };
  }
  if (target.startsWith("http://") || target.startsWith("https://")) {
    const { StreamableHTTPClientTransport } = await import(
      "@modelcontextprotocol/sdk/client/streamableHttp.js"
    );
    return { kind: "http", transport: new StreamableHTTPClientTransport(new URL(target)) };
  }
  throw new Error(`unsupported target ${JSON.stringify(target)}; ${usage()}`);
}

// Node 20/21 only expose the global WebSocket behind a flag: re-run ourselves with it.
function needsWebSocketFlag(argv) {
  const t = argv[0] || "";
  return (t.startsWith("ws://") || t.startsWith("wss://")) && typeof globalThis.WebSocket === "undefined";
}

async function main() {
  const argv = process.argv.slice(2);
  if (needsWebSocketFlag(argv) && !process.execArgv.includes("--experimental-websocket")) {
    const child = spawn(
      process.execPath,
      ["--experimental-websocket", fileURLToPath(import.meta.url), ...argv],
      { stdio: "inherit" },
    );
    child.on("exit", (code) => {
      finished = true;
      process.exit(code ?? 1);
    });
    return;
  }

  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { kind, transport } = await makeTransport(argv);
  activeTransport = transport;

  // The SDK tells HTTP transports the negotiated version through
  // setProtocolVersion(); wrap it (or add it) to learn that version for any transport.
  let protocolVersion = null;
  const origSet = typeof transport.setProtocolVersion === "function"
    ? transport.setProtocolVersion.bind(transport)
    : null;
  transport.setProtocolVersion = (v) => {
    protocolVersion = v;
    if (origSet) origSet(v);
  };

  const client = new Client({ name: "mcpscript-interop-ts", version: "1.0.0" }, { capabilities: {} });
  client.onerror = () => {}; // transport noise (e.g. a closed GET stream) is not a failure by itself

  await client.connect(transport, { timeout: TIMEOUT_MS });
  const server = client.getServerVersion();

  const listed = await client.listTools(undefined, { timeout: TIMEOUT_MS });
  const tools = (listed.tools || []).map((t) => t.name);

  const res = await client.callTool(
    { name: "echo", arguments: { message: ECHO_MESSAGE } },
    undefined,
    { timeout: TIMEOUT_MS },
  );
  if (res.isError) {
    throw new Error(`echo returned isError: ${JSON.stringify(res.content)}`);
  }
  const text = (res.content || []).find((c) => c.type === "text");
  if (!text) throw new Error(`echo returned no text content: ${JSON.stringify(res)}`);

  const out = {
    ok: true,
    transport: kind,
    tools,
    echo: text.text,
    serverName: server?.name ?? null,
    serverVersion: server?.version ?? null,
    protocolVersion,
  };

  // Best-effort clean shutdown: end the HTTP session (DELETE; 405 is fine), then close.
  try {
    if (kind === "http" && typeof transport.terminateSession === "function") {
      await transport.terminateSession();
    }
  } catch (_) {
    /* ignored */
  }
  try {
    await Promise.race([client.close(), new Promise((r) => setTimeout(r, 2000))]);
  } catch (_) {
    /* ignored */
  }
  clearInterval(keepAlive);
  finish(out, 0);
}

main().catch(fail);
