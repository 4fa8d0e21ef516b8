"""vidiff.dynamics"""
