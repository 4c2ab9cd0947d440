"""Change-data-capture bridge between Dynamics 365 Sales and Finance and Operations, through Kafka."""
