// Browser tests of the LOTUS web UI: headless chromium, driven by
// playwright-core, uses the UI of a real `lotus serve` as a person would
// (chat with a tool card, an approval, a module reload, the event filter) and
// saves a screenshot of each step under LOTUS_ARTIFACTS_DIR.
//
//   LOTUS_BINARY=build/release/bin/lotus LOTUS_TEST_MODULES_DIR=build/release/test-modules \
//   LOTUS_ARTIFACTS_DIR=/tmp/shots node --test ui.test.mjs
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { Daemon } from "./daemon.mjs";

const binary = process.env.LOTUS_BINARY;
if (!binary) throw new Error("set LOTUS_BINARY to the lotus executable");
const testModules = process.env.LOTUS_TEST_MODULES_DIR;
if (!testModules) throw new Error("set LOTUS_TEST_MODULES_DIR to the built test modules (build/<preset>/test-modules)");
const artifacts = path.resolve(process.env.LOTUS_ARTIFACTS_DIR || path.join(os.tmpdir(), "lotus-browser-artifacts"));
fs.mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const timeout = 20000;

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
});
after(async () => { if (browser) await browser.close(); });

// A YAML config with the scripted provider answering `turns` in order.
function configWith(turns, extra = "") {
  return `${extra}llm:
  providers:
    script:
      type: scripted
      script:
${turns.map((t) => "        - " + JSON.stringify(t)).join("\n")}
  default_model: script:replay
`;
}

// Runs `body(page, daemon)` against a fresh daemon with `config` (and extra
// `modules`, see Daemon); stops both after, and leaves the daemon's output in
// the failure when it breaks.
async function withUi(name, config, body, modules = {}) {
  const daemon = new Daemon(binary, config, modules);
  await daemon.start();
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push("page error: " + error.message));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`); });
  page.on("console", (message) => { if (message.type() === "error") problems.push(`console: ${message.text()} (${message.location().url})`); });
  try {
    await page.goto(daemon.link);
    await page.locator("#status.ok").waitFor({ timeout });
    await body(page, daemon);
    assert.deepEqual(problems, [], "the page reported errors");
  } catch (error) {
    await shot(page, name + "-failure").catch(() => {});
    error.message += "\n--- lotus serve output ---\n" + daemon.output;
    throw error;
  } finally {
    await context.close();
    assert.equal(await daemon.stop(), 0, "lotus serve stops cleanly");
  }
}

async function shot(page, name) {
  const file = path.join(artifacts, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  console.log("screenshot: " + file);
  return file;
}

test("a chat message streams its answer and shows the tool call as a card", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "lotus-browser-root-"));
  fs.writeFileSync(path.join(root, "notes.txt"), "remember the milk\n");
  const config = configWith(
    [
      { text: "Let me look.", tool_calls: [{ id: "c1", name: "fs__list", arguments: { path: root } }] },
      { text: "The folder holds one file, notes.txt, and nothing else." },
    ],
    `modules:\n  fs: {roots: [${JSON.stringify(root)}]}\n`);
  const final = "The folder holds one file, notes.txt, and nothing else.";
  await withUi("chat", config, async (page) => {
    // Every text the answer bubbles show along the way, to see it grow.
    await page.evaluate(() => {
      window.seenTexts = [];
      // Each text change replaces the bubble's text node, so the added nodes
      // keep every intermediate text even when changes come in one batch.
      new MutationObserver((records) => {
        for (const r of records) {
          if (!r.target.matches || !r.target.matches(".bubble.assistant")) continue;
          for (const node of r.addedNodes) window.seenTexts.push(node.textContent);
        }
      }).observe(document.getElementById("transcript"), { subtree: true, childList: true, characterData: true });
    });
    await page.locator("#chat-input").fill("What is in my folder?");
    await page.locator("#chat-input").press("Enter");
    await page.locator(".bubble.user", { hasText: "What is in my folder?" }).waitFor({ timeout });

    const card = page.locator(".tool-card").first();
    await card.waitFor({ timeout });
    await card.locator(".name", { hasText: "fs.list" }).waitFor({ timeout });
    assert.match(await card.locator(".arguments").textContent(), new RegExp(root.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    await card.locator(".result", { hasText: "notes.txt" }).waitFor({ timeout });
    assert.match(await card.getAttribute("class"), /\bdone\b/);

    const answer = page.locator(".bubble.assistant", { hasText: final });
    await answer.waitFor({ timeout });
    // It streamed: the bubble showed a part of the answer before all of it.
    const seen = await page.evaluate(() => window.seenTexts);
    assert.ok(seen.some((t) => t.length > 0 && t.length < final.length && final.startsWith(t)),
      "no partial answer was shown: " + JSON.stringify(seen));
    // One bubble per model turn, each whole.
    assert.deepEqual(await page.locator(".bubble.assistant").allTextContents(), ["Let me look.", final]);
    await page.locator("#chat-send:not([disabled])").waitFor({ timeout });
    await shot(page, "chat-streamed-answer-and-tool-card");
  });
  fs.rmSync(root, { recursive: true, force: true });
});

test("a pending tool call is approved from its card and its result and the answer show", async () => {
  const config = configWith([
    { text: "I will run it.", tool_calls: [{ id: "c1", name: "shell__run", arguments: { command: "echo hi-from-the-shell" } }] },
    { text: "The shell said hi-from-the-shell." },
  ]);
  await withUi("approval", config, async (page, daemon) => {
    await page.locator("#chat-input").fill("Say hi through the shell");
    await page.locator("#chat-send").click();

    const card = page.locator(".tool-card", { has: page.locator(".approval") });
    await card.waitFor({ timeout });
    assert.match(await card.locator(".arguments").textContent(), /echo hi-from-the-shell/);
    await card.locator(".approval", { hasText: "needs your approval" }).waitFor({ timeout });
    const pending = await daemon.api("GET", "/api/approvals");
    assert.equal(pending.status, 200);
    assert.equal((pending.body.approvals || pending.body).length, 1, JSON.stringify(pending.body));
    await shot(page, "approval-pending");

    await card.locator(".approval .approve").click();
    await card.locator(".approval", { hasText: "approved" }).waitFor({ timeout });
    await card.locator(".result", { hasText: "hi-from-the-shell" }).waitFor({ timeout });
    await page.locator(".bubble.assistant", { hasText: "The shell said hi-from-the-shell." }).waitFor({ timeout });
    const left = await daemon.api("GET", "/api/approvals");
    assert.equal((left.body.approvals || left.body).length, 0, JSON.stringify(left.body));
    await shot(page, "approval-approved-with-result");
  });
});

test("a module reloaded from the Modules tab is running again", async () => {
  await withUi("modules", configWith(["unused"]), async (page, daemon) => {
    await page.locator("#tabs button[data-tab=modules]").click();
    const row = page.locator("tr[data-module=file_watcher]");
    await row.waitFor({ timeout });
    await row.locator("td", { hasText: /^running$/ }).waitFor({ timeout });
    const before = await daemon.api("GET", "/api/modules");
    assert.ok(before.body.modules.some((m) => m.name === "file_watcher"), "file_watcher is loaded");
    await shot(page, "modules-before-reload");

    await row.locator("button.reload").click();
    await page.locator("#modules-message", { hasText: /^file_watcher: / }).waitFor({ timeout });
    assert.equal(await page.locator("#modules-message").textContent(), "file_watcher: reloaded");
    await page.locator("tr[data-module=file_watcher] td", { hasText: /^running$/ }).waitFor({ timeout });

    const after = await daemon.api("GET", "/api/modules");
    const watcher = after.body.modules.find((m) => m.name === "file_watcher");
    assert.equal(watcher.state, "running");
    await shot(page, "modules-after-reload");
  });
});

test("the event stream shows only the events matching its pattern", async () => {
  await withUi("events", configWith(["unused"]), async (page, daemon) => {
    await page.locator("#tabs button[data-tab=events]").click();
    await page.locator("#events-pattern").fill("browser.wanted.*");
    await page.locator("#events-form button[type=submit]").click();

    // The socket subscribes asynchronously: publish until the first match shows.
    const body = page.locator("#events-body");
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      const published = await daemon.api("POST", "/api/events", { channel: "browser.wanted.ready", data: { n: i } });
      assert.ok(published.status < 300, JSON.stringify(published.body));
      seen = await body.locator("tr", { hasText: "browser.wanted.ready" }).first()
        .waitFor({ timeout: 200 }).then(() => true, () => false);
    }
    assert.ok(seen, "a matching event reached the table");
    await page.locator("#events-clear").click();

    for (const channel of ["browser.other.one", "browser.wanted.one", "elsewhere.two", "browser.wanted.two", "browser.wanted"]) {
      const published = await daemon.api("POST", "/api/events", { channel, data: { marker: channel } });
      assert.ok(published.status < 300, JSON.stringify(published.body));
    }
    // A last matching event: once it shows, everything before it has been delivered.
    await daemon.api("POST", "/api/events", { channel: "browser.wanted.last", data: {} });
    await body.locator("tr", { hasText: "browser.wanted.last" }).waitFor({ timeout });
    // (A late warm-up event may still come in after Clear; it matches too.)
    const channels = (await body.locator("tr td:nth-child(2)").allTextContents())
      .filter((c) => c !== "browser.wanted.ready");
    assert.deepEqual(channels.sort(), ["browser.wanted.last", "browser.wanted.one", "browser.wanted.two"]);
    for (const shown of await body.locator("tr td:nth-child(2)").allTextContents()) {
      assert.match(shown, /^browser\.wanted\.[^.]+$/);
    }
    await shot(page, "events-filtered");
  });
});

test("a memory added from the Memory tab is found again by meaning and by keyword", async () => {
  await withUi("memory", configWith(["unused"]), async (page, daemon) => {
    await page.locator("#tabs button[data-tab=memory]").click();
    const fact = "The spare key to the garden shed hangs behind the blue flowerpot";
    await page.locator("#memory-content").fill(fact);
    await page.locator("#memory-type").selectOption("semantic");
    await page.locator("#memory-add-form button[type=submit]").click();
    await page.locator("#memory-message", { hasText: /^remembered \S+/ }).waitFor({ timeout });
    // A distractor, so the search has to rank.
    const other = await daemon.api("POST", "/api/memory", { content: "Tuesday is the day the recycling goes out", type: "episodic" });
    assert.equal(other.status, 200, JSON.stringify(other.body));

    for (const query of ["where is the spare key for the shed", "flowerpot"]) {
      await page.locator("#memory-query").fill(query);
      await page.locator("#memory-search-form button[type=submit]").click();
      const first = page.locator("#memory-results li").first();
      await first.waitFor({ timeout });
      assert.equal(await first.locator("div").first().textContent(), fact, `first result for "${query}"`);
      assert.match(await first.locator("div.muted").textContent(), /^semantic · score \d/);
    }
    await shot(page, "memory-search");
  });
});

test("the activity charts follow the bus and the graph draws every dependency", async () => {
  // A test module that depends on the memory module: the graph must show the arrow.
  const manifest = fs.readFileSync(path.join(testModules, "counter", "manifest.yaml"), "utf8")
    .replace(/^description: .*$/m, "$&\ndependencies:\n  modules: [memory]");
  const modules = { counter: { "manifest.yaml": manifest, "libcounter.so": { copy: path.join(testModules, "counter", "libcounter.so") } } };
  await withUi("activity", configWith(["unused"]), async (page, daemon) => {
    const listed = (await daemon.api("GET", "/api/modules")).body.modules;
    const counter = listed.find((m) => m.name === "counter");
    assert.ok(counter && counter.state === "running", JSON.stringify(listed));
    assert.deepEqual(counter.dependencies, ["memory"]);

    await page.locator("#tabs button[data-tab=activity]").click();
    // Every module gets a latency series.
    for (const m of listed) await page.locator("#latency-legend span", { hasText: new RegExp(`^${m.name}$`) }).waitFor({ timeout });
    // Events published between two samples show up as a rate above zero.
    let rate = 0;
    for (let round = 0; round < 20 && rate === 0; round++) {
      for (let i = 0; i < 50; i++) await daemon.api("POST", "/api/events", { channel: "test.count", data: { i } });
      await page.waitForTimeout(300);
      const text = (await page.locator("#rate-now").textContent()) || "";
      rate = Number((text.match(/now ([\d.]+) events\/s/) || [])[1] || 0);
    }
    assert.ok(rate > 0, "the events/s readout stayed at zero");
    await shot(page, "activity-charts");

    await page.locator("#tabs button[data-tab=graph]").click();
    for (const m of listed) await page.locator(`#graph g.node[data-module="${m.name}"]`).waitFor({ timeout });
    const edges = await page.locator("#graph line").evaluateAll((lines) => lines.map((l) => `${l.dataset.from}->${l.dataset.to}`));
    const expected = listed.flatMap((m) => m.dependencies.map((d) => `${m.name}->${d}`));
    assert.deepEqual(edges.sort(), expected.sort());
    assert.ok(edges.includes("counter->memory"), JSON.stringify(edges));
    await shot(page, "dependency-graph");
  }, modules);
});
