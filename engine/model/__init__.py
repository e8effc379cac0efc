"""Models: the embedded SmolLM2 (smollm.py), the tiny test model, GGUF LoRA conversion and the llama.cpp server."""
