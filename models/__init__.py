"""Pure online models and their evaluation: no Kafka, no Redis, no network."""
