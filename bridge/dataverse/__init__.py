"""Everything the bridge needs of Dataverse (Dynamics 365 Sales): metadata, readers,
capture (webhook notifications, change tracking), the sink and registration. Dataverse
field names stay in this package."""
