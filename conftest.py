"""Suite-wide fixtures only; the mlperf plugin itself loads through its pytest11 entry point."""
