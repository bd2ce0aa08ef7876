"""bonemarrow.benchmarks"""
