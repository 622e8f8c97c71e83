"""The recogniser: backbones, margin heads, config, data, the training loop, inference, evaluation, embed, export."""
