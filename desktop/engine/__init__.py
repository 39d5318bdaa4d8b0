"""The inference worker process: the only package that imports llama_cpp."""
