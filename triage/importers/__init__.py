"""Referral intake (FHIR R4, HL7 v2, Swedish-Excel CSV) and the export of decisions.

One module per format turns bytes into checked orders; intake.py takes them in (dedup,
create/update/cancel through the services, rejects to the inbox); inbox.py re-processes or
dismisses rejects; tokens.py authenticates and throttles API senders; export.py writes
decisions back as FHIR Task/ServiceRequest or CSV.
"""
