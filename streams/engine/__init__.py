"""The Faust side: the app, its agents and tables, the batch consumer, output, metrics and the worker process."""
