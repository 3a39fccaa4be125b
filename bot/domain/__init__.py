"""The pure domain: what Patreon told us, what a server chose, and the policy that turns both into roles (no I/O)."""
