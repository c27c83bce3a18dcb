"""Dialects: what HIS vendors already speak, mapped onto the native event model.

PURE mapping code — no I/O, no clock (callers pass ``now``), no framework:

* :mod:`services.dialects.nhsa` — the national platform's 3101/3102 (analysis) and
  3103 (feedback) envelopes → native :class:`~services.contracts.event.Event` objects,
  and alerts → ``output.result[]``;
* :mod:`services.dialects.cds` — HL7 CDS Hooks 2.0 ``order-select`` / ``order-sign``
  (FHIR ``draftOrders`` + ``prefetch``) → one native event, alerts → ``cards[]``;
* :mod:`services.dialects.feedback` — doctor feedback from every dialect → one record
  joined to its decision and rule through the alert id.

The routers in ``services/ingress/{nhsa,cds,feedback}.py`` decode, call these, and hand
the events to the same ``services.service_layer.decide`` the native API uses.
"""
