// The official MCP TypeScript SDK's client drives `lotus mcp` over stdio
// with the test-only conformance fixture module loaded: what modules give
// MCP clients besides plain tools works over stdio as it does over HTTP
// (bare tool names, MCP content, a tool's progress and logs, sampling and
// elicitation requests from inside a call, module resources, templates,
// prompts and subscriptions).
//
//   node fixtures_stdio_client.mjs LOTUS_BINARY FIXTURE_MODULES_DIR
// Exits 0 when every check passed; prints each check and what went wrong.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { check, finish, lotusArguments, lotusHome, lotusStdio, textOf } from "./interop_support.mjs";

const args = lotusArguments("fixtures_stdio_client.mjs", "FIXTURE_MODULES_DIR");
const home = lotusHome("lotus-fixtures-");
const { transport, stderr } = lotusStdio(args, home);
const client = new Client(
  { name: "lotus-fixtures", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: {} } },
);
const logs = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
let sampled = null;
client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
  sampled = request.params;
  return { role: "assistant", content: { type: "text", text: "four" }, model: "m", stopReason: "endTurn" };
});
let elicited = null;
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  elicited = request.params;
  return { action: "accept", content: { username: "ada", email: "ada@example.com" } };
});

try {
  await client.connect(transport);
  const caps = client.getServerCapabilities();
  check("resources.subscribe is offered", caps?.resources?.subscribe === true, JSON.stringify(caps));

  const names = (await client.listTools()).tools.map((t) => t.name);
  check("the fixture tools have bare names", names.includes("test_simple_text"), names.join(","));

  const image = await client.callTool({ name: "test_image_content", arguments: {} });
  check(
    "image content",
    image.content?.[0]?.type === "image" && image.content[0].mimeType === "image/png",
    JSON.stringify(image),
  );
  const error = await client.callTool({ name: "test_error_handling", arguments: {} });
  check("an isError result", error.isError === true && textOf(error).includes("intentionally"), JSON.stringify(error));

  const progress = [];
  await client.request(
    { method: "tools/call", params: { name: "test_tool_with_progress", arguments: {}, _meta: { progressToken: 9 } } },
    CallToolResultSchema,
    { onprogress: (p) => progress.push(p.progress) },
  );
  // The SDK's stdio client drops a progress notification that arrives in the
  // same read as the response (it handles notifications a tick later, after
  // the response removed the handler), so the last one (100) may be missing.
  check(
    "progress reported by the tool, rising",
    progress.includes(50) && progress.every((p, i) => i === 0 || p > progress[i - 1]),
    JSON.stringify(progress),
  );

  await client.setLoggingLevel("info");
  await client.callTool({ name: "test_tool_with_logging", arguments: {} });
  await new Promise((r) => setTimeout(r, 100));
  const messages = logs.filter((l) => l.logger === "conformance").map((l) => l.data);
  check("log messages from inside the call", messages.length === 3, JSON.stringify(logs));

  const sampling = await client.callTool({ name: "test_sampling", arguments: { prompt: "2+2?" } });
  check(
    "sampling/createMessage from inside a call",
    sampled?.messages?.[0]?.content?.text === "2+2?" && textOf(sampling) === "LLM response: four",
    JSON.stringify(sampling),
  );
  const elicitation = await client.callTool({ name: "test_elicitation", arguments: { message: "who?" } });
  check(
    "elicitation/create from inside a call",
    elicited?.message === "who?" && textOf(elicitation).includes("ada@example.com"),
    JSON.stringify(elicitation),
  );

  const binary = await client.readResource({ uri: "test://static-binary" });
  check("a blob resource", binary.contents[0]?.blob?.length > 0, JSON.stringify(binary));
  const templated = await client.readResource({ uri: "test://template/7/data" });
  check(
    "a template resource served by the module",
    JSON.parse(templated.contents[0]?.text ?? "{}").id === "7",
    JSON.stringify(templated),
  );
  const prompt = await client.getPrompt({ name: "test_prompt_with_arguments", arguments: { arg1: "a", arg2: "b" } });
  check(
    "a prompt with arguments",
    prompt.messages[0]?.content?.text === "Prompt with arguments: arg1='a', arg2='b'",
    JSON.stringify(prompt),
  );

  let updated = null;
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => (updated = n.params.uri));
  await client.subscribeResource({ uri: "test://watched-resource" });
  await client.callTool({ name: "touch_watched_resource", arguments: {} });
  for (let i = 0; i < 50 && !updated; i++) await new Promise((r) => setTimeout(r, 20));
  check("notifications/resources/updated after subscribing", updated === "test://watched-resource", String(updated));
} catch (e) {
  check("session", false, `${e?.stack ?? e}\nstderr of lotus:\n${stderr()}`);
} finally {
  await client.close().catch(() => {});
  home.remove();
}
finish();
