"""pix2pix trainer for Terraform DEM: prepare a dataset, train, export the plugin's ONNX, evaluate.

Run each step as a module: ``python -m training.prepare|train|recalibrate|export|evaluate|finetune|trainable --help``.
"""
