"""What the ground side and the target share besides the wire format.

The schemas of ``configs/``, the chip's site map (generated from the RTL) and the
definitions of the fault kinds live here, so that ``host`` and ``firmware_sim`` both
use them and neither imports the other.
"""
