"""The networks: conv blocks (`blocks`), the size rule of valid/padded convolutions (`sizes`), `UNet` and `TimmUNet`
(`unet`), the thin Hub mixin they inherit (`hub_mixin`), the registry of named builders and pretrained pins
(`registry`, `checkpoint_names`) and `model_info` (`info`).
"""
