"""Files in and out: scan readers (readers), label map files (labels), per-image output writers (writers)."""
