"""A small MCP server on the official Python SDK (mcp 2.3.0, from tests/clients/setup.sh): the
upstream that tests/integration/gateway.rs puts behind Steward.

    upstream.py http PORT     Streamable HTTP at http://127.0.0.1:PORT/mcp (sessions in memory,
                              as the SDK keeps them: a restart forgets every session)
    upstream.py stdio         the same tools on standard input/output

Over HTTP, with STREAM_LOG=FILE set, it appends "GET opened" and "GET closed" to FILE as a
client's GET stream opens and closes; with STATELESS=1 it keeps no sessions at all (the SDK's
stateless_http: every request stands alone, whatever revision it speaks); with HANDSHAKE_ONLY=1
it answers as a server from before 2026-07-28 does, refusing that revision's requests (HTTP 400),
so a 2026-07-28 client reaches it through a session Steward holds; with DISCOVER_FAILS_ONCE=1
its first 2026-07-28 request gets HTTP 503; with TLS_CERT=FILE and TLS_KEY=FILE it serves
https://localhost:PORT/mcp with that certificate (uvicorn's --ssl-certfile/--ssl-keyfile), and
with TLS_CLIENT_CA=FILE as well it accepts only clients showing a certificate that CA signed;
with JSON_RESPONSE=1 it answers each POST with one JSON body instead of an event stream (with
HANDSHAKE_ONLY=1: its requests to the client then go on the session's GET stream only).
"""

import asyncio
import os
import sys

from pydantic import BaseModel

from mcp import types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer(name="python-upstream", version="2.3.0")

# What the client side did to this process, for the tests to read back: the resources it
# subscribed to, the calls it cancelled (by the request id this process saw), and how many
# calls of `slow` are sleeping now.
subscribed: list[str] = []
cancelled: list[str] = []
sleeping = 0
# What became of each request `roots_unawaited` left behind: the roots, or the error answered.
unawaited: list[str] = []
background: set[asyncio.Task] = set()


@server.tool(description="Returns the text it was given.")
def echo(text: str) -> str:
    return text


@server.tool(description="Adds two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Always fails with the given message (an isError result).")
def fail(message: str) -> str:
    raise ValueError(message)


@server.tool(description="Sleeps this many seconds, then answers 'slept'.")
async def sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@server.tool(description="The value of the environment variable NAME in this process.")
def env(name: str) -> str:
    return os.environ.get(name, "")


@server.resource("notes://readme", name="readme", mime_type="text/plain")
def readme() -> str:
    return "The upstream's readme."


@server.resource("greeting://{name}", name="greeting", mime_type="text/plain")
def greeting(name: str) -> str:
    return f"Hello, {name}!"


@server.prompt(description="Asks for a review of the given code.")
def review(code: str) -> str:
    return f"Please review this code: {code}"


@server.tool(description="Reports progress in STEPS steps, logging each one, then answers 'done'.")
async def progress(steps: int, ctx: Context) -> str:
    for step in range(1, steps + 1):
        await ctx.info(f"step {step} of {steps}")
        await ctx.report_progress(step, steps, f"step {step}")
    return "done"


@server.tool(description="Asks the client's model (sampling) and answers with its reply.")
async def sample(question: str, ctx: Context) -> str:
    reply = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))],
        max_tokens=50,
        related_request_id=ctx.request_id,
    )
    return f"model said: {reply.content.text}"


class Answer(BaseModel):
    name: str


@server.tool(description="Asks the user for a name (elicitation) and greets it.")
async def ask_name(ctx: Context) -> str:
    answer = await ctx.elicit("What is your name?", Answer)
    if answer.action != "accept":
        return f"no name: {answer.action}"
    return f"hello {answer.data.name}"


class Confirmation(BaseModel):
    ok: bool


@server.tool(description="Asks the user to confirm (elicitation), remembering if it was cancelled first.")
async def confirm(ctx: Context) -> str:
    try:
        answer = await ctx.elicit("Go ahead?", Confirmation)
    except BaseException:
        cancelled.append(str(ctx.request_id))
        raise
    return f"confirmed={answer.action == 'accept' and answer.data.ok}"


@server.tool(description="Lists the client's roots.")
async def roots(ctx: Context) -> str:
    listed = await ctx.session.list_roots()
    return " ".join(str(root.uri) for root in listed.roots)


@server.tool(description="Asks for the client's roots on the session's GET stream, and returns without waiting for the answer.")
async def roots_unawaited(ctx: Context) -> str:
    async def ask():
        try:
            listed = await ctx.session.list_roots()
            unawaited.append("roots " + " ".join(str(root.uri) for root in listed.roots))
        except Exception as error:
            unawaited.append(f"error {error}")

    task = asyncio.create_task(ask())
    background.add(task)
    task.add_done_callback(background.discard)
    # Answering in one JSON body (JSON_RESPONSE=1), the result leaves only when this returns:
    # the request reaches the client's side first, while the call is still in flight.
    await asyncio.sleep(0.5)
    return "returned"


@server.tool(description="What became of the requests roots_unawaited sent, one a line.")
def unawaited_outcomes() -> str:
    return "\n".join(unawaited) or "none"


@server.tool(description="Tells subscribers that URI changed, and that the tool list changed.")
async def touch(uri: str, ctx: Context) -> str:
    await ctx.session.send_resource_updated(uri)
    await ctx.session.send_tool_list_changed()
    return "touched"


@server.tool(description="Sleeps this many seconds, remembering if it was cancelled first.")
async def slow(seconds: float, ctx: Context) -> str:
    global sleeping
    sleeping += 1
    try:
        await asyncio.sleep(seconds)
    except BaseException:
        cancelled.append(str(ctx.request_id))
        raise
    finally:
        sleeping -= 1
    return "slept"


@server.tool(description="Cancelled request ids, subscribed URIs, and how many calls sleep now.")
def seen() -> str:
    return f"cancelled={','.join(cancelled)} subscribed={','.join(subscribed)} sleeping={sleeping}"


async def subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    subscribed.append(str(params.uri))
    return types.EmptyResult()


server._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)


@server.tool(description="Ends this process at once, without answering.")
def crash() -> str:
    os._exit(3)


def logging_get_streams(app, path):
    """`app`, noting in the file at `path` when each GET stream opens and closes."""

    def note(line):
        with open(path, "a") as log:
            log.write(line + "\n")

    async def logged(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET":
            return await app(scope, receive, send)
        note("GET opened")
        try:
            await app(scope, receive, send)
        finally:
            note("GET closed")

    return logged


def handshake_only(app):
    """`app` as a server from before 2026-07-28 answers a request of a later revision (its
    `server/discover` among them): HTTP 400, unsupported protocol version."""
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    async def older(scope, receive, send):
        version = dict(scope.get("headers", [])).get(b"mcp-protocol-version")
        later = version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS
        if scope["type"] != "http" or not later:
            return await app(scope, receive, send)
        body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Unsupported protocol version"}}'
        await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return older


def discover_fails_once(app):
    """`app`, answering its first 2026-07-28 request (a client's `server/discover`) with HTTP 503,
    as a server briefly overloaded does."""
    failed = []

    async def flaky(scope, receive, send):
        version = dict(scope.get("headers", [])).get(b"mcp-protocol-version")
        modern = version is not None and version.decode("latin-1") >= "2026"
        if scope["type"] != "http" or not modern or failed:
            return await app(scope, receive, send)
        failed.append(True)
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"overloaded"})

    return flaky


async def serve_http(port, wrap, **tls):
    import uvicorn

    json_response = os.environ.get("JSON_RESPONSE") == "1"
    app = wrap(server.streamable_http_app(host="127.0.0.1", json_response=json_response))
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **tls)).serve()


if __name__ == "__main__":
    if sys.argv[1] == "http" and os.environ.get("STREAM_LOG"):
        path = os.environ["STREAM_LOG"]
        asyncio.run(serve_http(int(sys.argv[2]), lambda app: logging_get_streams(app, path)))
    elif sys.argv[1] == "http" and os.environ.get("HANDSHAKE_ONLY") == "1":
        asyncio.run(serve_http(int(sys.argv[2]), handshake_only))
    elif sys.argv[1] == "http" and os.environ.get("TLS_CERT"):
        tls = {"ssl_certfile": os.environ["TLS_CERT"], "ssl_keyfile": os.environ["TLS_KEY"]}
        if os.environ.get("TLS_CLIENT_CA"):
            import ssl

            tls.update(ssl_ca_certs=os.environ["TLS_CLIENT_CA"], ssl_cert_reqs=ssl.CERT_REQUIRED)
        asyncio.run(serve_http(int(sys.argv[2]), lambda app: app, **tls))
    elif sys.argv[1] == "http" and os.environ.get("DISCOVER_FAILS_ONCE") == "1":
        asyncio.run(serve_http(int(sys.argv[2]), discover_fails_once))
    elif sys.argv[1] == "http":
        stateless = os.environ.get("STATELESS") == "1"
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=stateless)
    else:
        server.run("stdio")
