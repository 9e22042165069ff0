// A minimal MCP client over raw Streamable HTTP (Node's fetch): initialize, the initialized
// notification, then tools/call with the Mcp-Session-Id the server handed out.

const HEADERS = {
  'Content-Type': 'application/json',
  Accept: 'application/json, text/event-stream',
};

/** POSTs one JSON-RPC message; returns {status, sessionId, message} (message: the reply, if any). */
export async function post(base, sessionId, body) {
  const headers = { ...HEADERS };
  if (sessionId) headers['Mcp-Session-Id'] = sessionId;
  const response = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await response.text();
  let message = null;
  const type = response.headers.get('content-type') || '';
  if (type.startsWith('application/json') && text) {
    message = JSON.parse(text);
  } else {
    // An SSE stream: the reply is the `data:` line whose JSON carries this request's id.
    for (const line of text.split(/\r?\n/)) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (!data) continue;
      try {
        const parsed = JSON.parse(data);
        if (body.id === undefined || parsed.id === body.id) message = parsed;
      } catch (_) {
        // not JSON: ignore
      }
    }
  }
  return { status: response.status, sessionId: response.headers.get('mcp-session-id'), message };
}

let nextId = 1;

/** Starts a session as `name`; returns a client with `call(tool, args)`. */
export async function connect(base, name, version = '1.0.0') {
  const init = await post(base, null, {
    jsonrpc: '2.0',
    id: nextId++,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name, version },
    },
  });
  if (init.status !== 200 || !init.sessionId || !init.message || !init.message.result) {
    throw new Error(`initialize as ${JSON.stringify(name)} failed: HTTP ${init.status} ${JSON.stringify(init.message)}`);
  }
  const sessionId = init.sessionId;
  const note = await post(base, sessionId, { jsonrpc: '2.0', method: 'notifications/initialized' });
  if (note.status !== 202 && note.status !== 200) {
    throw new Error(`notifications/initialized answered HTTP ${note.status}`);
  }
  return {
    name,
    sessionId,
    /** tools/call; returns the JSON-RPC reply (result or error). */
    async call(tool, args = {}) {
      const r = await post(base, sessionId, {
        jsonrpc: '2.0',
        id: nextId++,
        method: 'tools/call',
        params: { name: tool, arguments: args },
      });
      if (r.status !== 200 || !r.message) {
        throw new Error(`tools/call ${tool} answered HTTP ${r.status} ${JSON.stringify(r.message)}`);
      }
      return r.message;
    },
  };
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor(fn, ms, what) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
