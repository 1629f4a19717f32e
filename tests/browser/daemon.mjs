// Starts a real `lotus serve` for a browser test: its own temp HOME and XDG
// folders, a config written by the test, port 0; reads the port and the UI's
// token link from what the daemon prints, and stops it with SIGTERM.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export class Daemon {
  // `modules` maps a module folder name to files to put there ({file: text
  // or {copy: path}}); they land in the data folder's modules/, which the
  // daemon discovers beside its built-in modules.
  constructor(binary, config, modules = {}) {
    this.binary = binary;
    this.config = config;
    this.modules = modules;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "lotus-browser-"));
    this.output = "";
  }

  // Starts the daemon and waits (up to 60 s) for "Ctrl-C stops".
  async start() {
    const configDir = path.join(this.dir, "config", "lotus");
    fs.mkdirSync(configDir, { recursive: true });
    fs.mkdirSync(path.join(this.dir, "home"), { recursive: true });
    fs.writeFileSync(path.join(configDir, "config.yaml"), this.config);
    for (const [name, files] of Object.entries(this.modules)) {
      const folder = path.join(this.dir, "data", "lotus", "modules", name);
      fs.mkdirSync(folder, { recursive: true });
      for (const [file, content] of Object.entries(files)) {
        if (typeof content === "string") fs.writeFileSync(path.join(folder, file), content);
        else fs.copyFileSync(content.copy, path.join(folder, file));
      }
    }
    const env = {
      ...process.env,
      HOME: path.join(this.dir, "home"),
      XDG_CONFIG_HOME: path.join(this.dir, "config"),
      XDG_DATA_HOME: path.join(this.dir, "data"),
    };
    this.child = spawn(this.binary, ["serve", "--port", "0"], { env, cwd: this.dir });
    const collect = (chunk) => { this.output += chunk.toString(); };
    this.child.stdout.on("data", collect);
    this.child.stderr.on("data", collect);
    this.child.on("error", (error) => { this.spawnError = error; });
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 60000;
    while (!this.output.includes("Ctrl-C stops")) {
      if (this.spawnError) throw new Error(`could not start ${this.binary}: ${this.spawnError.message}`);
      if (this.child.exitCode !== null) throw new Error("lotus serve exited early:\n" + this.output);
      if (Date.now() > deadline) throw new Error("lotus serve did not start in 60 s:\n" + this.output);
      await new Promise((r) => setTimeout(r, 50));
    }
    const served = this.output.match(/serving on (http:\/\/127\.0\.0\.1:(\d+))/);
    const link = this.output.match(/web UI\s+(\S+#token=([0-9A-Za-z]+))/);
    if (!served || !link) throw new Error("no address or token link in:\n" + this.output);
    this.url = served[1];
    this.port = Number(served[2]);
    this.link = link[1];
    this.token = link[2];
    return this;
  }

  // Calls the API with the bearer token; returns { status, body }.
  async api(method, pathname, body) {
    const options = { method, headers: { Authorization: "Bearer " + this.token } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(this.url + pathname, options);
    const text = await response.text();
    let parsed = null;
    try { parsed = JSON.parse(text); } catch (_) { parsed = text; }
    return { status: response.status, body: parsed };
  }

  // SIGTERM, then waits for a clean exit; returns the exit code.
  async stop() {
    if (!this.child || this.spawnError || this.child.exitCode !== null) return this.child ? this.child.exitCode : null;
    this.child.kill("SIGTERM");
    let timer;
    const timeout = new Promise((r) => { timer = setTimeout(() => r(null), 30000); });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result === null) {
      this.child.kill("SIGKILL");
      throw new Error("lotus serve did not stop within 30 s:\n" + this.output);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    return result.code;
  }
}
