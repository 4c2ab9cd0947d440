"""The OData v4 engine both emulators share: entity model, $filter, query options, keys, paging, $batch and $metadata."""
