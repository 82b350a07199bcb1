"""Small helpers every room uses: the registry, shape checks, setting specs, atomic writes, image I/O."""
