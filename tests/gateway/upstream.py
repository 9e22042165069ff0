"""A small MCP server on the official Python SDK (mcp 2.3.0, from tests/clients/setup.sh): the
upstream that tests/integration/gateway.rs puts behind Steward.

    upstream.py http PORT     Streamable HTTP at http://127.0.0.1:PORT/mcp (sessions in memory,
                              as the SDK keeps them: a restart forgets every session)
    upstream.py stdio         the same tools on standard input/output
"""

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer(name="python-upstream", version="2.3.0")


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


@server.tool(description="Ends this process at once, without answering.")
def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
