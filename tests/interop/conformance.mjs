// Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
// server scenarios) against the /mcp endpoint of a real `lotus serve`.
//
//   node conformance.mjs LOTUS_BINARY RESULTS_DIR [MODULE_DIR...] [-- SUITE_ARGS...]
// MODULE_DIRs are added to the module path (the test-only fixture module).
// Exits with the suite's code: 0 when every scenario passed, or failed only
// as conformance-baseline.yml expects (a baseline entry that passes fails).
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const split = args.indexOf("--");
const ours = split < 0 ? args : args.slice(0, split);
const suiteArgs = split < 0 ? [] : args.slice(split + 1);
const [lotus, results, ...moduleDirs] = ours;
if (!lotus || !results) {
  console.error("usage: node conformance.mjs LOTUS_BINARY RESULTS_DIR [MODULE_DIR...] [-- ARGS]");
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), "lotus-conformance-"));
mkdirSync(join(dir, "config", "lotus"), { recursive: true });
writeFileSync(join(dir, "config", "lotus", "config.yaml"), "tools:\n  approval_timeout_ms: 5000\n");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const env = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: join(dir, "home"),
  XDG_CONFIG_HOME: join(dir, "config"),
  XDG_DATA_HOME: join(dir, "data"),
};
const modulePath = moduleDirs.flatMap((m) => ["--module-path", m]);
const daemon = spawn(lotus, [...modulePath, "serve", "--port", "0"], {
  env,
  stdio: ["ignore", "pipe", "pipe"],
});
let output = "";
daemon.stdout.on("data", (chunk) => (output += chunk));
daemon.stderr.on("data", (chunk) => (output += chunk));

let code = 1;
try {
  let base;
  for (let i = 0; i < 600 && !base; i++) {
    const match = output.match(/serving on (http:\/\/127\.0\.0\.1:[0-9]+)/);
    if (match && output.includes("Ctrl-C stops")) base = match[1];
    else if (daemon.exitCode !== null) break;
    else await sleep(100);
  }
  if (!base) throw new Error(`lotus serve did not start:\n${output}`);
  const token = readFileSync(join(dir, "config", "lotus", "api-token"), "utf8").trim();
  const node = process.execPath;
  const suite = join(here, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
  mkdirSync(results, { recursive: true });
  const runner = spawn(
    node,
    [
      "--import",
      join(here, "with_token.mjs"),
      suite,
      "server",
      "--url",
      `${base}/mcp`,
      "--expected-failures",
      join(here, "conformance-baseline.yml"),
      "-o",
      results,
      ...suiteArgs,
    ],
    { env: { ...process.env, LOTUS_URL: base, LOTUS_TOKEN: token }, stdio: "inherit", cwd: results },
  );
  code = await new Promise((resolve) => runner.on("exit", (c) => resolve(c ?? 1)));
} catch (e) {
  console.error(`${e?.stack ?? e}`);
} finally {
  daemon.kill("SIGTERM");
  for (let i = 0; i < 100 && daemon.exitCode === null; i++) await sleep(100);
  if (daemon.exitCode !== 0) {
    console.error(`lotus serve did not stop cleanly (exit ${daemon.exitCode}):\n${output}`);
    code = code || 1;
  }
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
