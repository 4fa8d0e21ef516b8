"""vidiff.models"""
