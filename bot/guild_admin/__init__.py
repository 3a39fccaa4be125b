"""A server admin's side: mapping tiers to roles, the policy settings, syncs, links by hand, and the health check."""
