"""``scaleenv ui``: a read-only web app over a run's log that follows the log live.

See :mod:`scaleenv._ui.app` (routes and pages), :mod:`scaleenv._ui.index` (the live
whole-log index), :mod:`scaleenv._ui.http` (the HTTP server on trio) and ``static/``
(the pages: plain HTML, CSS and JavaScript modules, no build step).
"""
