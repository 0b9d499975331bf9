"""The mock's state and rules: objects, fields, records, the query engine. No HTTP here."""
