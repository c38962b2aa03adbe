"""The chip's RTL under a simulator as the flight software's chip (``--backend rtl``)."""
