"""scaleenv"""
