"""The aiohttp app: the OAuth callback page, the signed webhook receiver and `/healthz`."""
