"""Pure-Python core: hardware, GGUF headers, estimates, catalog. No Qt, no llama_cpp."""
