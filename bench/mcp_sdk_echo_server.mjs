// The official MCP TypeScript SDK's server with the same echo tool LOTUS
// serves in the benchmark (bench/mcp_echo), over stdio or Streamable HTTP.
//
//   node mcp_sdk_echo_server.mjs stdio
//   node mcp_sdk_echo_server.mjs http PORT_FILE   (listens on a free loopback port)
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
const sdk = new URL("../tests/interop/node_modules/@modelcontextprotocol/sdk/dist/esm/", import.meta.url);
const { McpServer } = await import(new URL("server/mcp.js", sdk));
const { StdioServerTransport } = await import(new URL("server/stdio.js", sdk));
const { StreamableHTTPServerTransport } = await import(new URL("server/streamableHttp.js", sdk));
const { isInitializeRequest } = await import(new URL("types.js", sdk));
const { z } = await import(new URL("../tests/interop/node_modules/zod/index.js", import.meta.url));

function echoServer() {
  const server = new McpServer({ name: "sdk-echo", version: "1.0.0" });
  server.registerTool(
    "echo",
    { description: "Returns the text it is given", inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: "text", text }] }),
  );
  return server;
}

const [mode, portFile] = process.argv.slice(2);
if (mode === "stdio") {
  await echoServer().connect(new StdioServerTransport());
} else if (mode === "http") {
  const sessions = new Map();
  const http = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
    const id = req.headers["mcp-session-id"];
    let transport = id ? sessions.get(id) : undefined;
    if (!transport && body && isInitializeRequest(body)) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (sid) => sessions.set(sid, transport),
      });
      await echoServer().connect(transport);
    }
    if (!transport) {
      res.writeHead(400).end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message: "no session" } }));
      return;
    }
    await transport.handleRequest(req, res, body);
  });
  http.keepAliveTimeout = 60000;
  http.listen(0, "127.0.0.1", () => writeFileSync(portFile, `${http.address().port}\n`));
} else {
  console.error("usage: node mcp_sdk_echo_server.mjs stdio | http PORT_FILE");
  process.exit(2);
}
