// The official MCP TypeScript SDK's client drives `lotus mcp` over stdio, as
// an IDE would: initialize, list and call tools (allowed, denied, invalid),
// resources and templates, prompts, logging, approvals asked through
// elicitation (yes, no, withdrawn when the call is cancelled), and a client
// without elicitation whose call nobody can approve, refused at once.
//
//   node sdk_client.mjs LOTUS_BINARY MODULES_DIR
// Exits 0 when every check passed; prints each check and what went wrong.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import {
  cancelAWaitingWrite,
  check,
  finish,
  lotusArguments,
  lotusHome,
  lotusStdio,
  sleep,
  textOf,
} from "./interop_support.mjs";

const args = lotusArguments("sdk_client.mjs");
const home = lotusHome("lotus-sdk-", { withWork: true });
const { dir, work } = home;
const { transport, stderr } = lotusStdio(args, home);
const client = new Client(
  { name: "lotus-interop", version: "1.0.0" },
  { capabilities: { elicitation: {} } },
);
// What the person says when LOTUS asks for an approval; the last question.
let person = async () => ({ action: "decline" });
let asked;
client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
  asked = { params: request.params, signal: extra.signal };
  return person(request.params, extra.signal);
});
// fs.write (high risk: it needs a person's approval) through `c`.
const write = (c, path) => c.callTool({ name: "fs__write", arguments: { path, content: path } });
const logs = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
client.setNotificationHandler(ToolListChangedNotificationSchema, () => {});

try {
  await client.connect(transport);
  const server = client.getServerVersion();
  check("initialize names the server", server?.name === "lotus", JSON.stringify(server));
  const caps = client.getServerCapabilities();
  check(
    "capabilities: tools, resources, prompts, logging",
    caps?.tools && caps?.resources && caps?.prompts && caps?.logging,
    JSON.stringify(caps),
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
    "tools/list has fs, shell and memory tools with schemas",
    ["fs__read", "fs__write", "shell__run", "memory__recall"].every((n) => names.includes(n)) &&
      tools.every((t) => t.inputSchema?.type === "object"),
    names.join(","),
  );

  const read = await client.callTool({ name: "fs__read", arguments: { path: "hello.txt" } });
  check("tools/call fs__read", !read.isError && textOf(read).includes("hi from lotus"), JSON.stringify(read));
  const denied = await client.callTool({ name: "shell__run", arguments: { command: "true" } });
  check("a denied call is an error result", denied.isError === true, JSON.stringify(denied));
  const invalid = await client.callTool({ name: "fs__read", arguments: { path: 7 } });
  check(
    "invalid arguments are an error result",
    invalid.isError === true && textOf(invalid).includes("invalid arguments"),
    JSON.stringify(invalid),
  );
  let unknownRefused = false;
  try {
    await client.callTool({ name: "no__such_tool", arguments: {} });
  } catch (e) {
    unknownRefused = e.code === -32602;
  }
  check("an unknown tool is a -32602 error", unknownRefused);

  const resources = await client.listResources();
  const uris = resources.resources.map((r) => r.uri);
  check(
    "resources/list",
    uris.includes("lotus://health") && uris.includes("lotus://modules/fs/manifest"),
    uris.join(","),
  );
  const manifest = await client.readResource({ uri: "lotus://modules/fs/manifest" });
  check("resources/read a manifest", manifest.contents[0]?.text?.includes("name: fs"), JSON.stringify(manifest));
  const templates = await client.listResourceTemplates();
  check(
    "resources/templates/list",
    templates.resourceTemplates.some((t) => t.uriTemplate === "lotus://memory/search/{query}"),
    JSON.stringify(templates),
  );
  let missing = false;
  try {
    await client.readResource({ uri: "lotus://modules/none/manifest" });
  } catch (e) {
    missing = e.code === -32002;
  }
  check("reading a missing resource is -32002", missing);

  const prompts = await client.listPrompts();
  check(
    "prompts/list",
    ["lotus_task", "recall", "explain_module"].every((n) => prompts.prompts.some((p) => p.name === n)),
    JSON.stringify(prompts),
  );
  const prompt = await client.getPrompt({ name: "lotus_task", arguments: { task: "tidy up" } });
  check("prompts/get", prompt.messages[0]?.content?.text?.includes("tidy up"), JSON.stringify(prompt));

  await client.setLoggingLevel("debug");
  check("logging/setLevel", true);

  // fs.write is high risk: LOTUS asks this client's person, who says yes, then no.
  person = async () => ({ action: "accept", content: { approve: true } });
  const approved = await write(client, "approved.txt");
  check(
    "an approval is asked through elicitation, and yes runs the call",
    !approved.isError &&
      existsSync(join(work, "approved.txt")) &&
      asked?.params?.message?.includes("fs.write") &&
      asked?.params?.requestedSchema?.properties?.approve?.type === "boolean",
    `${JSON.stringify(approved)} asked: ${JSON.stringify(asked?.params)}`,
  );
  person = async () => ({ action: "decline" });
  const declined = await write(client, "declined.txt");
  check(
    "a declined approval is an error result, and nothing is written",
    declined.isError === true &&
      textOf(declined).includes("declined on the MCP client") &&
      !existsSync(join(work, "declined.txt")),
    JSON.stringify(declined),
  );
  // Nobody answers: the call waits until the client cancels it, and LOTUS
  // withdraws its question.
  person = (params, signal) =>
    new Promise((resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
  await cancelAWaitingWrite(client, 300);
  check("the cancelled write did not happen", !existsSync(join(work, "cancelled.txt")));
  for (let i = 0; i < 100 && !asked?.signal?.aborted; i++) await sleep(20);
  check("cancelling the call withdrew its question", asked?.signal?.aborted === true);
} catch (e) {
  check("session", false, `${e?.stack ?? e}\nstderr of lotus:\n${stderr()}`);
} finally {
  await client.close().catch(() => {});
}

// A client that offers no elicitation, on a LOTUS where nothing else shows
// approvals: the call is refused now, saying how to allow it.
const plain = new Client({ name: "lotus-interop-plain", version: "1.0.0" });
const second = lotusStdio(args, home);
try {
  await plain.connect(second.transport);
  const began = Date.now();
  const refused = await write(plain, "unasked.txt");
  check(
    "without elicitation, a call nobody can approve is refused at once",
    refused.isError === true &&
      textOf(refused).includes("nobody is there to approve it") &&
      textOf(refused).includes("--allow") &&
      Date.now() - began < 10000 &&
      !existsSync(join(work, "unasked.txt")),
    `${Date.now() - began} ms: ${JSON.stringify(refused)}`,
  );
} catch (e) {
  check("session without elicitation", false, `${e?.stack ?? e}\nstderr of lotus:\n${second.stderr()}`);
} finally {
  await plain.close().catch(() => {});
  home.remove();
}
finish();
