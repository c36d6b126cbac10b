"""webviewer.rendering"""
