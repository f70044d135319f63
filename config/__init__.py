"""Settings and Kafka topic administration: what the worker, the collector and the tools all stand on."""
