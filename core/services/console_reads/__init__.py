"""Read-only queries for the operator console, one module per console area (dashboard,
orders and the attention queue, inventory, key reports, providers, webhooks).

Each function runs in the caller's (read) transaction, never writes and never commits,
and returns small frozen rows rather than ORM objects, so the console can pass them
between threads and widgets. Key codes never appear here: a key is named by its id,
and searching by code goes through the keyed fingerprint.

Long lists page by keyset (``before_id`` / ``after``: the last row of the page shown),
never by OFFSET, and nothing here counts the whole keys table: stock is counted for the
products on one page, and low stock (``core.services.inventory.low_stock_products``)
counts each product's available keys only up to its threshold.
"""
