"""Code plugins share (CoreDNS's plugin/pkg): no directive lives here.

A plugin never imports another plugin; what two plugins need lives in a module here.
"""
