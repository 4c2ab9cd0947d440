"""The flow engine: consume → apply → commit against a small record-stream port, free of Kafka."""
