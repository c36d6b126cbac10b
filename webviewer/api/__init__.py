"""webviewer.api"""
