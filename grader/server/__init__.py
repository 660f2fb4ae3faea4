"""The grading service: `grade serve` takes submissions over HTTP and grades them on the server.

`db` (tables, engine, migrations), `accounts` (roster, tokens), `policy` (due dates, late
penalties, rate limits, what students see), `storage` (uploaded files on disk), `dispatch`
(grading in the batch pool's processes: the web process never imports student code), `app`
(the FastAPI routes under /api/v1) and `serve` (uvicorn, signals). Needs the `server` extra.
"""
