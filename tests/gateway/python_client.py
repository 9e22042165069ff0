"""The Python `mcp` SDK client through Steward's gateway: calls the upstream's `add` (as
`py__add`) in the era `mode` picks ("auto": the server/discover probe, then stateless
2026-07-28; "legacy": initialize and a session). Prints one JSON line: the negotiated
revision and the call's text.

    python_client.py URL auto|legacy
    python_client.py URL ask      in auto mode, with sampling, elicitation and roots callbacks:
                                  calls py__ask_name, py__sample and py__roots, whose upstream
                                  requests reach this client (through an InputRequiredResult
                                  when the revision is 2026-07-28); prints their texts too
"""

import asyncio
import json
import sys

from mcp import Client, types
from mcp_types import Implementation


async def elicit(context, params):
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def sample(context, params):
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="forty-two"),
        model="test-model",
    )


async def roots(context):
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/project")])


async def main(url: str, mode: str) -> None:
    info = Implementation(name="python-sdk-gateway-test", version="2.3.0")
    asks = mode == "ask"
    callbacks = (
        {"elicitation_callback": elicit, "sampling_callback": sample, "list_roots_callback": roots}
        if asks
        else {}
    )
    async with Client(url, mode="auto" if asks else mode, client_info=info, **callbacks) as client:
        result = await client.call_tool("py__add", {"a": 2, "b": 3})
        answer = {"protocol_version": client.protocol_version, "text": result.content[0].text}
        if asks:
            for tool, arguments in [("ask_name", {}), ("sample", {"question": "?"}), ("roots", {})]:
                called = await client.call_tool(f"py__{tool}", arguments)
                answer[tool] = called.content[0].text
        print(json.dumps(answer))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
