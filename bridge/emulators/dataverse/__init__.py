"""The Dataverse Web API (Dynamics 365 Sales) emulator: tables, records, queries, metadata, webhooks and the F&O virtual tables."""
