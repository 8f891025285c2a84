"""``scaleenv ui``: a read-only web app over a run's log that follows the log live.

See :mod:`scaleenv.ui.app` (routes and pages), :mod:`scaleenv.ui.index` (the live
whole-log index), :mod:`scaleenv.ui.http` (the HTTP server on trio) and ``static/``
(the pages: plain HTML, CSS and JavaScript modules, no build step).
"""
