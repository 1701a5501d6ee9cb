"""criobe-verify twin of Nuclio 1.13.0's processor with its Python runtime."""
