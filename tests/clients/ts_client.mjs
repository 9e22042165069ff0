// The TypeScript SDK client against Steward.
//   node ts_client.mjs URL connect            -> initialize, list tools, call health_check; prints
//                                                {sessionId, tools, success} and leaves the session open
//   node ts_client.mjs URL reattach SESSION   -> reuse SESSION without initialize (as after a
//                                                restart of the client's host), list tools and call one
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, mode, sessionId] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), sessionId ? { sessionId } : {});
const client = new Client({ name: "ts-sdk-test", version: "1.32.2" });
let initialized = false;
const send = transport.send.bind(transport);
transport.send = (message, options) => {
  if (message.method === "initialize") initialized = true;
  return send(message, options);
};
await client.connect(transport);
const tools = (await client.listTools()).tools.map((t) => t.name).sort();
const result = await client.callTool({ name: "health_check", arguments: {} });
const body = JSON.parse(result.content[0].text);
console.log(JSON.stringify({ mode, sessionId: transport.sessionId, initialized, tools, success: body.success }));
// Leave the session open on purpose (no DELETE): the reattach test reuses it.
process.exit(0);
