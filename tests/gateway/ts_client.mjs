// The TypeScript SDK client (1.32.2, from tests/clients/setup.sh) against Steward's gateway,
// for tests/integration/gateway_relay.rs and gateway_restarts.rs.
//
//   node ts_client.mjs relay URL UPSTREAM [bare]
//       Calls UPSTREAM's tools of tests/gateway/upstream.py through Steward and prints one JSON
//       object of what this client saw: progress, log lines, the answers to the upstream's
//       sampling / elicitation / roots requests (declared unless `bare`), a subscribed
//       resource's update and a list change, and a cancelled call.
//   node ts_client.mjs steady URL
//       Initializes once, then for each line `TOOL JSON` on standard input calls TOOL and prints
//       {"text", "error"}; on end of input prints {"initializes"}: how many `initialize` requests
//       this client sent (the test restarts the servers between lines).
import { createInterface } from "node:readline";
import { Client } from "../clients/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js";
import { StreamableHTTPClientTransport } from "../clients/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from "../clients/node_modules/@modelcontextprotocol/sdk/dist/esm/types.js";

const [mode, url, upstream, bare] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url));
let initializes = 0;
const send = transport.send.bind(transport);
transport.send = (message, options) => {
  if (message.method === "initialize") initializes += 1;
  return send(message, options);
};
const capabilities = bare ? {} : { sampling: {}, elicitation: {}, roots: { listChanged: false } };
const client = new Client({ name: "ts-gateway-test", version: "1.32.2" }, { capabilities });
const seen = { logs: [], updated: [], toolsChanged: 0 };
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => seen.logs.push(n.params.data));
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => seen.updated.push(n.params.uri));
client.setNotificationHandler(ToolListChangedNotificationSchema, () => (seen.toolsChanged += 1));
if (!bare) {
  client.setRequestHandler(CreateMessageRequestSchema, (r) => ({
    role: "assistant",
    model: "test-model",
    content: { type: "text", text: `forty-two (to ${r.params.messages[0].content.text})` },
  }));
  client.setRequestHandler(ElicitRequestSchema, () => ({ action: "accept", content: { name: "Ada" } }));
  client.setRequestHandler(ListRootsRequestSchema, () => ({
    roots: [{ uri: "file:///work/project", name: "project" }],
  }));
}
await client.connect(transport);

const text = (result) => result.content?.[0]?.text ?? "";
const outcome = async (name, args, options) => {
  try {
    const result = await client.callTool({ name, arguments: args }, undefined, options);
    return { text: text(result), isError: result.isError === true };
  } catch (error) {
    return { error: String(error.message ?? error), code: error.code };
  }
};
const until = async (check) => {
  for (let i = 0; i < 100 && !check(); i += 1) await new Promise((r) => setTimeout(r, 100));
};

if (mode === "relay") {
  // UPSTREAM "-": the upstream itself, without Steward (to check this script).
  const direct = upstream === "-";
  const tool = (name) => (direct ? name : `${upstream}__${name}`);
  const out = {};
  const progress = [];
  out.progress = await outcome(tool("progress"), { steps: 3 }, { onprogress: (p) => progress.push(p) });
  out.progressSeen = progress;
  out.sample = await outcome(tool("sample"), { question: "the answer?" });
  out.askName = await outcome(tool("ask_name"), {});
  out.roots = await outcome(tool("roots"), {});
  const uri = direct ? "notes://readme" : `upstream://${upstream}/notes://readme`;
  try {
    await client.subscribeResource({ uri });
    out.subscribed = true;
  } catch (error) {
    out.subscribed = String(error.message ?? error);
  }
  out.touch = await outcome(tool("touch"), { uri: "notes://readme" });
  await until(() => seen.updated.length > 0 && seen.toolsChanged > 0);
  const abort = new AbortController();
  setTimeout(() => abort.abort("the test cancels"), 1500);
  out.slow = await outcome(tool("slow"), { seconds: 20 }, { signal: abort.signal });
  let after = {};
  for (let i = 0; i < 50; i += 1) {
    after = await outcome(tool("seen"), {});
    if (/cancelled=\S/.test(after.text)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  out.seenByUpstream = after;
  out.logs = seen.logs;
  out.updated = seen.updated;
  out.toolsChanged = seen.toolsChanged;
  out.initializes = initializes;
  out.sessionId = transport.sessionId;
  console.log(JSON.stringify(out));
  process.exit(0);
}

// steady
console.log(JSON.stringify({ ready: true, sessionId: transport.sessionId }));
for await (const line of createInterface({ input: process.stdin })) {
  const space = line.indexOf(" ");
  const result = await outcome(line.slice(0, space), JSON.parse(line.slice(space + 1)));
  console.log(JSON.stringify(result));
}
console.log(JSON.stringify({ initializes }));
process.exit(0);
