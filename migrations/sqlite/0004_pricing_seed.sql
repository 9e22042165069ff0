-- List prices of current models, in USD per 1,000 tokens (the published per-million-token
-- prices / 1000), each from the day it took effect (00:00 UTC). These are public LIST prices,
-- used only for the ledger's cost ESTIMATES: they ignore prompt caching, batch discounts,
-- long-context surcharges (e.g. gemini-2.5-pro's rate above 200k-token prompts; these rows are
-- its <= 200k rate) and any negotiated price. A price change is a new row with a later
-- effective_from, so requests already recorded keep the price they were estimated with.
-- SQLite keeps amounts as exact decimal text and times in the RFC 3339 form sqlx writes
-- ('YYYY-MM-DDTHH:MM:SS+00:00'), so they compare and conflict exactly with bound values.
INSERT INTO llm_pricing (model, provider, input_per_1k, output_per_1k, effective_from) VALUES
    ('claude-opus-4-5',   'anthropic', '0.005', '0.025', '2025-11-24T00:00:00+00:00'),
    ('claude-sonnet-4-5', 'anthropic', '0.003', '0.015', '2025-09-29T00:00:00+00:00'),
    ('claude-haiku-4-5',  'anthropic', '0.001', '0.005', '2025-10-15T00:00:00+00:00'),
    ('claude-opus-4-1',   'anthropic', '0.015', '0.075', '2025-08-05T00:00:00+00:00'),
    ('claude-opus-4',     'anthropic', '0.015', '0.075', '2025-05-22T00:00:00+00:00'),
    ('claude-sonnet-4',   'anthropic', '0.003', '0.015', '2025-05-22T00:00:00+00:00'),
    ('gpt-5',             'openai',    '0.00125', '0.01', '2025-08-07T00:00:00+00:00'),
    ('gpt-5-mini',        'openai',    '0.00025', '0.002', '2025-08-07T00:00:00+00:00'),
    ('gpt-5-nano',        'openai',    '0.00005', '0.0004', '2025-08-07T00:00:00+00:00'),
    ('gpt-4.1',           'openai',    '0.002', '0.008', '2025-04-14T00:00:00+00:00'),
    ('gpt-4.1-mini',      'openai',    '0.0004', '0.0016', '2025-04-14T00:00:00+00:00'),
    ('gemini-2.5-pro',    'google',    '0.00125', '0.01', '2025-06-17T00:00:00+00:00'),
    ('gemini-2.5-flash',  'google',    '0.0003', '0.0025', '2025-06-17T00:00:00+00:00')
ON CONFLICT DO NOTHING;
