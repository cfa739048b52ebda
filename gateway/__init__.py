"""The asyncio edge of ussdsim: CLI, config, HTTP API, USSD sessions, routing, the clock."""
