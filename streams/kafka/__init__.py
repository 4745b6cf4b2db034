"""Talking to Kafka outside Faust: client options (TLS/SASL), topics and their creation, and the publisher."""
