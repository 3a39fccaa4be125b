"""What an operator watches: Prometheus metrics (one registry per bot) and the readiness checks behind /readyz."""
