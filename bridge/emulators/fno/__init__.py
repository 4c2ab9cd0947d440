"""The Finance and Operations OData emulator: entities, records, actions, sales processing and business events."""
