"""webviewer.app"""
