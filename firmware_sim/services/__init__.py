"""The PUS services of the flight software, one module each (docs/ICD.md section 15)."""
