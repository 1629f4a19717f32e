// LangGraph.js side of the ReAct framework-overhead benchmark (bench/react_overhead.sh).
// Runs the same scripted scenario as LOTUS's react_bench: a fake chat model with no latency
// calls tool_0, tool_1, ... one per turn and answers "done" on turn `steps`; prints one JSON line.
//
//   node react_bench.mjs [--tools 50] [--tasks 200] [--steps 5]

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { BaseChatModel } from "@langchain/core/language_models/chat_models";
import { AIMessage, ToolMessage } from "@langchain/core/messages";
import { tool } from "@langchain/core/tools";
import { createReactAgent } from "@langchain/langgraph/prebuilt";
import { z } from "zod";

const WARMUP_TASKS = 20;

function parseArgs(argv) {
  const opts = { tools: 50, tasks: 200, steps: 5 };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, "");
    if (!(name in opts) || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete flag '${argv[i]}' (expected --tools N --tasks N --steps N)`);
    }
    const value = Number(argv[++i]);
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`--${name} must be a positive integer, got '${argv[i]}'`);
    }
    opts[name] = value;
  }
  return opts;
}

// Chat model that replays a fixed script. The turn number is the count of ToolMessages in the
// input: turns 0..steps-2 call tool_(turn mod tools) with {q: "x"}, turn steps-1 answers "done".
class ScriptedChatModel extends BaseChatModel {
  constructor(fields) {
    super({});
    this.tools = fields.tools;
    this.steps = fields.steps;
  }

  _llmType() {
    return "scripted";
  }

  // Like real chat models: bind tools as call options on a RunnableBinding around this model.
  bindTools(tools, kwargs) {
    return this.withConfig({ tools, ...kwargs });
  }

  async _generate(messages) {
    const turn = messages.filter((m) => ToolMessage.isInstance(m)).length;
    const message =
      turn < this.steps - 1
        ? new AIMessage({
            content: "",
            tool_calls: [
              { id: `call_${turn}`, name: `tool_${turn % this.tools}`, args: { q: "x" }, type: "tool_call" },
            ],
          })
        : new AIMessage({ content: "done" });
    return { generations: [{ message, text: typeof message.content === "string" ? message.content : "" }] };
  }
}

function makeTools(count) {
  const tools = [];
  for (let k = 0; k < count; k++) {
    tools.push(
      tool(async (args) => JSON.stringify({ echo: args }), {
        name: `tool_${k}`,
        description: `Echo tool number ${k}: returns its arguments.`,
        schema: z.object({ q: z.string() }),
      }),
    );
  }
  return tools;
}

// Fails loudly unless the run followed the script exactly.
function checkResult(result, steps) {
  const messages = result.messages;
  const last = messages[messages.length - 1];
  if (last?.content !== "done") {
    throw new Error(`last message is ${JSON.stringify(last?.content)}, expected "done"`);
  }
  const toolMessages = messages.filter((m) => ToolMessage.isInstance(m));
  if (toolMessages.length !== steps - 1) {
    throw new Error(`got ${toolMessages.length} ToolMessages, expected ${steps - 1}`);
  }
  for (const m of toolMessages) {
    if (m.content !== '{"echo":{"q":"x"}}') {
      throw new Error(`tool ${m.name} returned ${JSON.stringify(m.content)}`);
    }
  }
}

function packageVersion(name) {
  const here = dirname(fileURLToPath(import.meta.url));
  return JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const { tools: toolCount, tasks, steps } = parseArgs(process.argv.slice(2));
  const agent = createReactAgent({
    llm: new ScriptedChatModel({ tools: toolCount, steps }),
    tools: makeTools(toolCount),
  });
  // Each agent turn and each tool round is one graph step; leave room for long scripts.
  const config = { recursionLimit: 2 * steps + 5 };
  const runTask = () => agent.invoke({ messages: [{ role: "user", content: "go" }] }, config);

  for (let i = 0; i < WARMUP_TASKS; i++) checkResult(await runTask(), steps);

  // Sequential tasks, each timed on its own; the total is the sum of the task times.
  const taskUs = [];
  for (let i = 0; i < tasks; i++) {
    const start = process.hrtime.bigint();
    const result = await runTask();
    taskUs.push(Number(process.hrtime.bigint() - start) / 1000);
    checkResult(result, steps);
  }

  const totalUs = taskUs.reduce((a, b) => a + b, 0);
  const sorted = [...taskUs].sort((a, b) => a - b);
  const iterations = tasks * steps;
  const round = (x) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify({
      framework: "langgraph.js",
      tools: toolCount,
      tasks,
      steps,
      iterations,
      us_per_iteration: round(totalUs / iterations),
      p50_task_us: round(percentile(sorted, 50)),
      p99_task_us: round(percentile(sorted, 99)),
      node: process.versions.node,
      versions: {
        "@langchain/langgraph": packageVersion("@langchain/langgraph"),
        "@langchain/core": packageVersion("@langchain/core"),
        zod: packageVersion("zod"),
      },
    }),
  );
}

main().catch((err) => {
  console.error(`react_bench (langgraph.js): ${err.stack ?? err}`);
  process.exit(1);
});
