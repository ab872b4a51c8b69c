// A small server on the official TypeScript SDK that talks to the client unasked, for
// mcpscript's interop tests (tests/interop_server_requests.rs).
//
// Usage: node ts_server_requests.mjs   (listens on 127.0.0.1, a port the OS picks)
// Prints one line on stdout once it accepts connections: listening http://127.0.0.1:PORT/mcp
//
// Streamable HTTP with sessions (POST, GET stream, DELETE at /mcp). Tools:
//   elicit_on_post  asks the client (elicitation/create) on the tool call's own event
//                   stream and returns what it answered, as JSON text
//   elicit_on_get   the same request, sent on the session's GET stream
//   announce        sends notifications/message on the GET stream, then returns "sent"
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import {
  CallToolRequestSchema,
  ElicitResultSchema,
  ListToolsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const QUESTION = {
  message: "Who are you?",
  requestedSchema: {
    type: "object",
    properties: {
      name: { type: "string", default: "Ada" },
      age: { type: "integer", default: 36 },
    },
  },
};

function makeServer() {
  const server = new Server({ name: "ts-server-requests", version: "1.0.0" }, { capabilities: { tools: {}, logging: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: ["elicit_on_post", "elicit_on_get", "announce"].map((name) => ({
      name,
      inputSchema: { type: "object", properties: {} },
    })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const name = req.params.name;
    if (name === "elicit_on_post") {
      const r = await extra.sendRequest({ method: "elicitation/create", params: QUESTION }, ElicitResultSchema);
      return { content: [{ type: "text", text: JSON.stringify(r) }] };
    }
    if (name === "elicit_on_get") {
      const r = await server.elicitInput(QUESTION);
      return { content: [{ type: "text", text: JSON.stringify(r) }] };
    }
    if (name === "announce") {
      await server.notification({ method: "notifications/message", params: { level: "info", data: "on the GET stream" } });
      return { content: [{ type: "text", text: "sent" }] };
    }
    throw new Error(`unknown tool ${name}`);
  });
  return server;
}

const transports = new Map();

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : undefined;
}

const http = createServer(async (req, res) => {
  try {
    const sid = req.headers["mcp-session-id"];
    if (req.method === "POST") {
      const body = await readJson(req);
      let transport = sid ? transports.get(sid) : undefined;
      if (!transport) {
        if (sid || body?.method !== "initialize") {
          res.writeHead(404, { "content-type": "application/json" });
          res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32001, message: "Session not found" } }));
          return;
        }
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => transports.set(id, transport),
        });
        transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
        await makeServer().connect(transport);
      }
      await transport.handleRequest(req, res, body);
      return;
    }
    const transport = sid && transports.get(sid);
    if (!transport) {
      res.writeHead(404).end();
      return;
    }
    await transport.handleRequest(req, res);
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
});

http.listen(0, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${http.address().port}/mcp`);
});
