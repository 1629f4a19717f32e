// The official MCP TypeScript SDK's Streamable HTTP client drives the /mcp
// endpoint of a real `lotus serve`: initialize, list and call tools (allowed,
// denied), resources and templates, prompts, cancelling a call in flight,
// tools/list_changed on the session stream, and ending the session.
//
//   node sdk_http_client.mjs LOTUS_BINARY MODULES_DIR
// Exits 0 when every check passed; prints each check and what went wrong.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  cancelAWaitingWrite,
  check,
  finish,
  lotusArguments,
  lotusHome,
  sleep,
  textOf,
} from "./interop_support.mjs";

const { lotus, modules } = lotusArguments("sdk_http_client.mjs");
const home = lotusHome("lotus-sdk-http-", { withWork: true });
const { dir, work } = home;

const daemon = spawn(lotus, ["--module-path", modules, "serve", "--port", "0"], {
  env: home.env,
  stdio: ["ignore", "pipe", "pipe"],
});
let output = "";
daemon.stdout.on("data", (chunk) => (output += chunk));
daemon.stderr.on("data", (chunk) => (output += chunk));

async function started() {
  for (let i = 0; i < 600; i++) {
    const match = output.match(/serving on (http:\/\/127\.0\.0\.1:[0-9]+)/);
    if (match && output.includes("Ctrl-C stops")) return match[1];
    if (daemon.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`lotus serve did not start:\n${output}`);
}

let client;
try {
  const base = await started();
  const token = readFileSync(join(dir, "config", "lotus", "api-token"), "utf8").trim();
  const auth = { Authorization: `Bearer ${token}` };
  const connect = async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
      requestInit: { headers: auth },
    });
    const c = new Client({ name: "lotus-http-interop", version: "1.0.0" });
    await c.connect(transport);
    return { c, transport };
  };

  let changed = 0;
  const first = await connect();
  client = first.c;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => changed++);
  check("initialize names the server", client.getServerVersion()?.name === "lotus");
  check("a session id was given", typeof first.transport.sessionId === "string");
  check(
    "the newest protocol version was agreed",
    first.transport.protocolVersion === "2025-11-25",
    first.transport.protocolVersion,
  );
  await client.ping();
  check("ping", true);

  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  const names = tools.map((t) => t.name);
  check(
    "tools/list has fs, shell and memory tools",
    ["fs__read", "fs__write", "shell__run", "memory__recall"].every((n) => names.includes(n)),
    names.join(","),
  );
  const read = await client.callTool({ name: "fs__read", arguments: { path: "hello.txt" } });
  check("tools/call fs__read", !read.isError && textOf(read).includes("hi from lotus"), JSON.stringify(read));
  let progressed = 0;
  const streamed = await client.callTool(
    { name: "fs__read", arguments: { path: "hello.txt" } },
    undefined,
    { onprogress: () => progressed++ },
  );
  check("a call with progress streams it", !streamed.isError && progressed >= 1, `${progressed}`);
  const denied = await client.callTool({ name: "shell__run", arguments: { command: "true" } });
  check("a denied call is an error result", denied.isError === true, JSON.stringify(denied));

  const resources = await client.listResources();
  const uris = resources.resources.map((r) => r.uri);
  check("resources/list", uris.includes("lotus://modules/fs/manifest"), uris.join(","));
  const manifest = await client.readResource({ uri: "lotus://modules/fs/manifest" });
  check("resources/read a manifest", manifest.contents[0]?.text?.includes("name: fs"));
  const templates = await client.listResourceTemplates();
  check(
    "resources/templates/list",
    templates.resourceTemplates.some((t) => t.uriTemplate === "lotus://memory/search/{query}"),
  );
  const prompts = await client.listPrompts();
  check("prompts/list", prompts.prompts.some((p) => p.name === "lotus_task"));
  const prompt = await client.getPrompt({ name: "lotus_task", arguments: { task: "tidy up" } });
  check("prompts/get", prompt.messages[0]?.content?.text?.includes("tidy up"));

  await cancelAWaitingWrite(client, 500, "session");
  let approvals = [];
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`${base}/api/approvals`, { headers: auth });
    approvals = (await r.json()).approvals;
    if (approvals.length === 0) break;
    await sleep(100);
  }
  check("the cancel refused the waiting approval", approvals.length === 0, JSON.stringify(approvals));
  check("the cancelled write did not happen", !existsSync(join(work, "cancelled.txt")));

  // Unloading a module changes the tools: the session stream says so.
  const unload = await fetch(`${base}/api/modules/shell/unload`, { method: "POST", headers: auth });
  check("the shell module unloads", unload.ok, `${unload.status}`);
  for (let i = 0; i < 100 && changed === 0; i++) await sleep(100);
  check("notifications/tools/list_changed arrives on the session stream", changed > 0);
  const after = await client.listTools();
  check("the shell tools are gone", !after.tools.some((t) => t.name === "shell__run"));

  const oldSession = first.transport.sessionId;
  await first.transport.terminateSession();
  check("DELETE ends the session", first.transport.sessionId === undefined);
  await client.close();
  const second = await connect();
  client = second.c;
  await client.ping();
  check("a new session after the old one ended", second.transport.sessionId && second.transport.sessionId !== oldSession);
} catch (e) {
  check("session", false, `${e?.stack ?? e}\noutput of lotus serve:\n${output}`);
} finally {
  await client?.close().catch(() => {});
  daemon.kill("SIGTERM");
  for (let i = 0; i < 100 && daemon.exitCode === null; i++) await sleep(100);
  check("lotus serve stops cleanly", daemon.exitCode === 0, `exit ${daemon.exitCode}\n${output}`);
  home.remove();
}
finish();
