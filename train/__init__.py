"""LoRA SFT on teletype recordings, rendered by engine.render (the serve-time renderer)."""
