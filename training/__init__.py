"""bonemarrow.training"""
