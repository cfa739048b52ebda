"""SMPP 3.4: a sans-IO codec and session rules, and the asyncio SMSC edge."""
