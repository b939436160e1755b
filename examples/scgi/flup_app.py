# The document's "Python Example (using flup)": a WSGI app behind SCGI.
#
# Under uWSGI (Debian: uwsgi-core, uwsgi-plugin-python3), which speaks
# SCGI itself and needs no flup:
#
#     uwsgi --plugin python3 --scgi-socket 127.0.0.1:4000 \
#         --wsgi-file flup_app.py
#
# (--scgi-nph-socket for the NPH shape). Run directly, it uses flup's
# SCGI server as the document does: `python3 flup_app.py` (pip's flup).
# The import moved into the __main__ block, so uWSGI can load the file
# without flup installed; the app itself is as printed.


def app(environ, start_response):
    path_info = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING", "")

    # Build Gemini response
    status = "20 text/gemini"
    body = f"# Hello from SCGI!\n\nPath: {path_info}\nQuery: {query}\n"

    start_response(status, [])
    return [body.encode()]


# uWSGI looks for a callable named "application".
application = app

if __name__ == "__main__":
    from flup.server.scgi import WSGIServer

    WSGIServer(app, bindAddress=("127.0.0.1", 4000)).run()
