"""orbit-hil flight software model and the bit-exact accelerator model."""
