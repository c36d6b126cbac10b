"""webviewer.loading"""
