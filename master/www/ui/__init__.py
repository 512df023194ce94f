"""The master's HTML pages (``WebUI``), served beside the JSON API by ``www/site.py``."""

from buildfarm.master.www.ui.app import WebUI

__all__ = ["WebUI"]
