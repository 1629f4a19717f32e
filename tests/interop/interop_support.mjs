// What the SDK-client interop tests share: their arguments, a throwaway
// home for LOTUS, the environment that points LOTUS there, and the checks
// they print and count.
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

// [LOTUS_BINARY, MODULES_DIR] from the command line, or the usage and exit 2.
export function lotusArguments(script, modulesName = "MODULES_DIR") {
  const [lotus, modules] = process.argv.slice(2);
  if (!lotus || !modules) {
    console.error(`usage: node ${script} LOTUS_BINARY ${modulesName}`);
    process.exit(2);
  }
  return { lotus, modules };
}

// A temporary directory holding LOTUS's home, config and data. With
// `withWork`, also a work folder (hello.txt in it) that the fs and shell
// modules are rooted in, shell calls denied and approvals waiting a minute.
export function lotusHome(prefix, { withWork = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, "config", "lotus"), { recursive: true });
  let work;
  if (withWork) {
    work = join(dir, "work");
    mkdirSync(work);
    writeFileSync(join(work, "hello.txt"), "hi from lotus\n");
    writeFileSync(
      join(dir, "config", "lotus", "config.yaml"),
      `modules:\n  fs: {roots: [${work}]}\n  shell: {roots: [${work}]}\n` +
        `tools:\n  policy: {"shell.*": deny}\n  approval_timeout_ms: 60000\n`,
    );
  }
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: join(dir, "home"),
    XDG_CONFIG_HOME: join(dir, "config"),
    XDG_DATA_HOME: join(dir, "data"),
  };
  return { dir, work, env, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// `lotus mcp` as a stdio transport for the SDK's client; its stderr is kept
// for the report of a failed session.
export function lotusStdio({ lotus, modules }, home) {
  const transport = new StdioClientTransport({
    command: lotus,
    args: ["--module-path", modules, "mcp"],
    env: home.env,
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk) => (stderr += chunk));
  return { transport, stderr: () => stderr };
}

let failures = 0;
// Prints one check; a failed one with what went wrong.
export function check(name, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok ? "" : `: ${detail}`}`);
  if (!ok) failures++;
}

// Prints the summary and exits 0 only when every check passed.
export function finish() {
  console.log(failures ? `${failures} checks failed` : "all checks passed");
  process.exit(failures ? 1 : 0);
}

// fs.write asks a person, and nobody answers: the call waits until the
// client cancels it, `afterMs` in. Checks that the call ends on the client
// and the server still answers (`session` names it in the check).
export async function cancelAWaitingWrite(client, afterMs, session = "server") {
  const controller = new AbortController();
  const pending = client.callTool(
    { name: "fs__write", arguments: { path: "cancelled.txt", content: "no" } },
    undefined,
    { signal: controller.signal },
  );
  setTimeout(() => controller.abort("changed my mind"), afterMs);
  let aborted = false;
  try {
    await pending;
  } catch {
    aborted = true;
  }
  check("a cancelled call ends on the client", aborted);
  await client.ping();
  check(`the ${session} still answers after a cancel`, true);
}

export const textOf = (result) => (result.content ?? []).map((c) => c.text ?? "").join("\n");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
