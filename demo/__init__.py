"""The LUPI demo app: `python -m demo.app` (see demo/app.py).

Gradio's analytics are switched off here, before any module of the package imports
gradio: with share=False nothing leaves the machine.
"""
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
