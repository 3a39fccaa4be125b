"""A patron's side: the OAuth link flow, its signed state, and the `/patreon status` report."""
