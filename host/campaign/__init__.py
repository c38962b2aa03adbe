"""Radiation campaigns, the ground side: ``hil campaign`` (``cli``) and the backend that
runs each injection on a target over the serial link (``link_backend``). The campaign
engine itself is the ``campaign`` package (docs/CAMPAIGNS.md)."""
