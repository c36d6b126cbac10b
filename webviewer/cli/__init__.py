"""webviewer.cli"""
