"""How operators see the jobs' state: /health/ checks, /metrics, Sentry, the dashboards' reads."""
