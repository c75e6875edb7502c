"""The web demo (``collaface demo``): a Gradio page over :mod:`collaface.inference`."""
