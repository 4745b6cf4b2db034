"""The worker's HTTP side: who may call what, the ingest endpoint, and (in views) the routes and the cluster's scatter-gather."""
