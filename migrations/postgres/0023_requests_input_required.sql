-- A new status, `input_required`: the request was answered with a 2026-07-28
-- InputRequiredResult (the server asks the client for input, and the client's retry, another
-- request with its own row, completes the call). Neither a success (nothing was done yet) nor
-- an error.
ALTER TABLE mcp_requests DROP CONSTRAINT mcp_requests_status_check;
ALTER TABLE mcp_requests ADD CONSTRAINT mcp_requests_status_check
    CHECK (status IN ('success', 'error', 'tool_error', 'cancelled', 'timeout', 'input_required'));
