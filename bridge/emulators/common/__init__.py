"""Emulator plumbing shared by both systems: settings, errors, principals and tokens, the record store, faults, delivery, the control API and app assembly."""
