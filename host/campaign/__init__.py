"""Radiation campaigns: statistical fault injection against a chip, a mission soak in an
orbit, and the reports that say what each mitigation costs and buys (docs/CAMPAIGNS.md)."""
