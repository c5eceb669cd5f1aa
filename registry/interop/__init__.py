"""Interoperability channels: the REDCap-compatible API and the FHIR R4 API.

Thin HTTP layers over `registry.services.redcap` and `registry.services.fhir`.
"""
