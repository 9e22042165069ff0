"""The Python `mcp` SDK client through Steward's gateway: calls the upstream's `add` (as
`py__add`) in the era `mode` picks ("auto": the server/discover probe, then stateless
2026-07-28; "legacy": initialize and a session). Prints one JSON line: the negotiated
revision and the call's text.

    python_client.py URL auto|legacy
"""

import asyncio
import json
import sys

from mcp import Client
from mcp_types import Implementation


async def main(url: str, mode: str) -> None:
    info = Implementation(name="python-sdk-gateway-test", version="2.3.0")
    async with Client(url, mode=mode, client_info=info) as client:
        result = await client.call_tool("py__add", {"a": 2, "b": 3})
        print(json.dumps({
            "protocol_version": client.protocol_version,
            "text": result.content[0].text,
        }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
