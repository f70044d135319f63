"""What a shop back-end needs to read recommendations: no model, Kafka or worker code."""
