"""The vistool demo app (Gradio).

    python demos/app.py [--model M] [--backend transformers|openai] [--base-url URL]
                        [--host 127.0.0.1] [--port 7860] [--share] [--device D] [--tiny]

Same as `vistool demo`. The app itself lives in `vistool.app` (`build_app(vt)`).
"""

from vistool.app import main

if __name__ == "__main__":
    main()
