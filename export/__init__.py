"""bonemarrow.export"""
