"""The Python `mcp` SDK client against Steward: connect, list tools, call one, in the era
`mode` picks ("auto": the server/discover probe, then stateless 2026-07-28; "legacy": initialize
and a session). Prints one JSON line: the negotiated revision, the tool names, the call's outcome.

    python_client.py URL auto|legacy
"""

import asyncio
import json
import sys

from mcp import Client
from mcp_types import Implementation


async def main(url: str, mode: str) -> None:
    async with Client(url, mode=mode, client_info=Implementation(name="python-sdk-test", version="2.3.0")) as client:
        tools = await client.list_tools()
        result = await client.call_tool("health_check", {})
        body = json.loads(result.content[0].text)
        print(json.dumps({
            "protocol_version": client.protocol_version,
            "tools": sorted(tool.name for tool in tools.tools),
            "success": body.get("success"),
        }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
